"""Feed-forward CNN layer specifications: parsing, shape propagation and parameter counts.

Shapes are ``(H, W, C)`` while spatial and ``(n,)`` once flat.  Per layer, with
``side(n, k, p, s) = ⌊(n + 2p − k)/s⌋ + 1``::

    conv     k_h×k_w, C_out, padding p, stride s   (H, W, C) → (side(H), side(W), C_out)
             weights k_h·k_w·C·C_out, biases C_out (one per output channel, shared over space)
    maxpool / avgpool  k_h×k_w, padding p, stride s   (H, W, C) → (side(H), side(W), C)
    fc       n_out units; flattens its input to n = H·W·C   → (n_out,)
             weights n·n_out, biases n_out
    relu     shape unchanged;  flatten (H, W, C) → (H·W·C,);  softmax shape unchanged (last)

Only conv and fc layers hold parameters.  All arithmetic is on Python ints.

A layer is given either as a string (case-insensitive, no inner spaces)::

    conv<k>[x<k>]-<channels>[/p<n>][/s<n>][/nobias]   conv3-64, conv3x5-16/p0/s2
    maxpool[<k>[x<k>]][/p<n>][/s<n>]                    maxpool, max-pool, maxpool3/s1/p1
    avgpool[<k>[x<k>]][/p<n>][/s<n>]                    avgpool2, avg-pool
    fc-<units>[/nobias]                                 fc-1024
    relu | flatten | softmax

or as a table ``{kind = "conv", kernel = 3 or [3, 5], out = 64, padding = 1, stride = 1,
bias = true}``; pools take ``kernel, padding, stride``, fc takes ``units, bias``, the others
only ``kind``.  Values a layer leaves out come from ``Defaults`` (the handout's: conv padding
1 and stride 1, pool 2×2 with stride 2 and padding 0); biases are on unless ``/nobias`` or
``bias = false``.  Nothing is evaluated: strings go through strict regular expressions and
numbers must already be ints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from derive.errors import InputError

# -- bounds ---------------------------------------------------------------------------------------
#: (low, high) for every size a specification may give; larger values are refused.
BOUNDS = {
    "side": (1, 16384),  # input height and width
    "channels": (1, 65536),  # input channels, conv output channels
    "units": (1, 1048576),  # fc output units
    "kernel": (1, 256),
    "padding": (0, 256),
    "stride": (1, 256),
}
MAX_LAYERS = 200
#: Largest activation (numbers in one layer's output): keeps every weight array's element
#: count inside int64, which the numpy checks need.
MAX_ACTIVATION = 10**12

KINDS = ("conv", "maxpool", "avgpool", "fc", "relu", "flatten", "softmax")
POOLS = ("maxpool", "avgpool")
SPATIAL = ("conv", *POOLS)

GRAMMAR = (
    "conv<k>[x<k>]-<channels>[/p<n>][/s<n>][/nobias], maxpool[<k>[x<k>]][/p<n>][/s<n>], "
    "avgpool[<k>[x<k>]][/p<n>][/s<n>], fc-<units>[/nobias], relu, flatten, softmax "
    "(case-insensitive; e.g. conv3-64, conv3x5-16/p0/s2, maxpool2/s2, fc-1024)"
)
_NUM = r"[0-9]+"
_KERNEL = rf"(?P<kh>{_NUM})(?:x(?P<kw>{_NUM}))?"
_OPTS = r"(?P<opts>(?:/[a-z0-9]*)*)"
_PATTERNS = {
    "conv": re.compile(rf"conv{_KERNEL}-(?P<out>{_NUM}){_OPTS}", re.ASCII),
    "maxpool": re.compile(rf"max-?pool(?:{_KERNEL})?{_OPTS}", re.ASCII),
    "avgpool": re.compile(rf"avg-?pool(?:{_KERNEL})?{_OPTS}", re.ASCII),
    "fc": re.compile(rf"fc-(?P<out>{_NUM}){_OPTS}", re.ASCII),
    "relu": re.compile("relu"),
    "flatten": re.compile("flatten"),
    "softmax": re.compile("softmax"),
}
_WORD = re.compile(r"[a-z]+(?:-pool)?", re.ASCII)
_OPTION = re.compile(r"(?P<key>[ps])(?P<val>[0-9]+)|(?P<flag>nobias)", re.ASCII)
#: Options a string may carry, per kind.
_STRING_OPTIONS = {"conv": ("p", "s", "nobias"), "maxpool": ("p", "s"), "avgpool": ("p", "s")}
#: Keys a table may carry, per kind (required ones first).
_TABLE_KEYS = {
    "conv": (("kernel", "out"), ("padding", "stride", "bias")),
    "maxpool": ((), ("kernel", "padding", "stride")),
    "avgpool": ((), ("kernel", "padding", "stride")),
    "fc": (("units",), ("bias",)),
    "relu": ((), ()),
    "flatten": ((), ()),
    "softmax": ((), ()),
}
_MAX_TEXT = 64


# -- the data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Defaults:
    """Values a layer specification may leave out (the handout's by default)."""

    conv_padding: int = 1
    conv_stride: int = 1
    pool_kernel: int = 2
    pool_stride: int = 2
    pool_padding: int = 0

    @classmethod
    def parse(cls, value: Any, field: str = "defaults") -> Defaults:
        """``Defaults`` from a table with any of the field names; the rest keep theirs."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise InputError(f"{field}: expected a table, got {_show(value)}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in value if k not in names)
        if unknown:
            raise InputError(f"{field}: unknown key {unknown[0]!r}; allowed are {', '.join(names)}")
        # Each field is bounded like the layer value it stands for: conv_padding like padding.
        out = {k: _int(v, f"{field}.{k}", k.split("_")[1]) for k, v in value.items()}
        made = cls(**out)
        _check_pool_padding(
            made.pool_kernel, made.pool_kernel, made.pool_padding, f"{field}.pool_padding"
        )
        return made


@dataclass(frozen=True)
class Layer:
    """One parsed layer; ``out`` is conv output channels or fc units."""

    kind: str
    kernel: tuple[int, int] | None = None
    out: int | None = None
    padding: int = 0
    stride: int = 1
    bias: bool = False

    @property
    def name(self) -> str:
        """The canonical string: parses back to this layer under any ``Defaults``."""
        if self.kind in SPATIAL:
            kh, kw = self.kernel
            k = f"{kh}" if kh == kw else f"{kh}x{kw}"
            head = f"conv{k}-{self.out}" if self.kind == "conv" else f"{self.kind}{k}"
            name = f"{head}/p{self.padding}/s{self.stride}"
            return name + "/nobias" if self.kind == "conv" and not self.bias else name
        if self.kind == "fc":
            return f"fc-{self.out}" + ("" if self.bias else "/nobias")
        return self.kind


@dataclass(frozen=True)
class Row:
    """A layer placed in the network: its shapes and its parameters as the engine counts them.

    ``factors`` is the weight count as a product in the order written by hand (k_h, k_w,
    C_in, C_out for conv; the input's dimensions, then n_out, for fc); empty without weights.
    """

    index: int
    layer: Layer
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    factors: tuple[int, ...]
    bias: int
    remainder: tuple[int, ...] = ()  # (n + 2p − k) mod s per spatial axis: rows/cols dropped

    @property
    def weights(self) -> int:
        return math.prod(self.factors) if self.factors else 0

    @property
    def params(self) -> int:
        return self.weights + self.bias


@dataclass(frozen=True)
class Network:
    """A parsed, shape-checked network."""

    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    rows: tuple[Row, ...]

    @property
    def total(self) -> int:
        return sum(r.params for r in self.rows)


# -- the rules ------------------------------------------------------------------------------------
def output_side(n: int, k: int, p: int, s: int) -> int:
    """Output length along one axis: ⌊(n + 2p − k)/s⌋ + 1."""
    return (n + 2 * p - k) // s + 1


def conv_weights(k_h: Any, k_w: Any, c_in: Any, c_out: Any, bias: bool = True) -> tuple:
    """(weight factors, bias count) of a conv layer; works on ints and SymPy symbols."""
    return (k_h, k_w, c_in, c_out), (c_out if bias else 0)


def fc_weights(n_in: Sequence[Any], n_out: Any, bias: bool = True) -> tuple:
    """(weight factors, bias count) of an fc layer on an input of shape ``n_in``."""
    return (*n_in, n_out), (n_out if bias else 0)


def _spatial_shape(layer: Layer, shape: tuple[int, ...], where: str) -> tuple[tuple, tuple]:
    h, w, c = shape
    sides, rems = [], []
    for axis, n, k in (("height", h, layer.kernel[0]), ("width", w, layer.kernel[1])):
        m = output_side(n, k, layer.padding, layer.stride)
        if m < 1:
            raise InputError(
                f"{where}: kernel {axis} {k} is larger than the padded input {axis} "
                f"{n + 2 * layer.padding} ({n} + 2·{layer.padding}); the output {axis} would be "
                f"⌊({n} + 2·{layer.padding} − {k})/{layer.stride}⌋ + 1 = {m}; allowed: kernel "
                f"≤ input + 2·padding"
            )
        sides.append(m)
        rems.append((n + 2 * layer.padding - k) % layer.stride)
    channels = layer.out if layer.kind == "conv" else c
    return (*sides, channels), tuple(rems)


def place(index: int, layer: Layer, shape: tuple[int, ...]) -> Row:
    """The row of ``layer`` at position ``index`` receiving an input of ``shape``."""
    where = f"layers[{index}] ({layer.name})"
    if layer.kind in SPATIAL and len(shape) != 3:
        raise InputError(
            f"{where}: a {layer.kind} layer needs a spatial (H, W, C) input, but the layer "
            f"before it produced a flat vector of {shape[0]}; put spatial layers before the "
            "first fc or flatten layer"
        )
    factors, bias, rems = (), 0, ()
    if layer.kind in SPATIAL:
        out, rems = _spatial_shape(layer, shape, where)
        if layer.kind == "conv":
            factors, bias = conv_weights(*layer.kernel, shape[2], layer.out, layer.bias)
    elif layer.kind == "fc":
        out = (layer.out,)
        factors, bias = fc_weights(shape, layer.out, layer.bias)
    elif layer.kind == "flatten":
        out = (math.prod(shape),)
    else:  # relu, softmax: elementwise
        out = shape
    if math.prod(out) > MAX_ACTIVATION:
        raise InputError(
            f"{where}: the output {' x '.join(map(str, out))} holds {math.prod(out)} numbers; "
            f"at most {MAX_ACTIVATION} are allowed"
        )
    return Row(index, layer, tuple(shape), tuple(out), tuple(factors), bias, rems)


def propagate(input_shape: tuple[int, int, int], layers: Sequence[Layer]) -> tuple[Row, ...]:
    """Every layer's row, shapes passed from one layer to the next."""
    rows, shape = [], tuple(input_shape)
    for i, layer in enumerate(layers):
        if layer.kind == "softmax" and i != len(layers) - 1:
            raise InputError(
                f"layers[{i}] (softmax): softmax must be the last layer, but {len(layers) - 1 - i}"
                " layer(s) follow it; allowed only at the end"
            )
        rows.append(place(i, layer, shape))
        shape = rows[-1].out_shape
    return tuple(rows)


# -- parsing --------------------------------------------------------------------------------------
def parse_network(input_shape: Any, layers: Any, defaults: Defaults | None = None) -> Network:
    """A ``Network`` from plain values: ``[H, W, C]`` and a list of strings or tables."""
    defaults = defaults or Defaults()
    shape = parse_input_shape(input_shape)
    if not isinstance(layers, list | tuple) or not layers:
        raise InputError(
            f"layers: expected a non-empty list of layer strings or tables, got {_show(layers)}"
        )
    if len(layers) > MAX_LAYERS:
        raise InputError(f"layers: at most {MAX_LAYERS} layers are allowed, got {len(layers)}")
    parsed = tuple(parse_layer(item, i, defaults) for i, item in enumerate(layers))
    return Network(shape, parsed, propagate(shape, parsed))


def parse_input_shape(value: Any) -> tuple[int, int, int]:
    """``[H, W, C]`` as a tuple of validated ints."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        shown = _show(list(value) if isinstance(value, tuple) else value)
        raise InputError(f"input_shape: expected [H, W, C] (three integers), got {shown}")
    h, w, c = value
    shape = (
        _int(h, "input_shape[0] (H)", "side"),
        _int(w, "input_shape[1] (W)", "side"),
        _int(c, "input_shape[2] (C)", "channels"),
    )
    if math.prod(shape) > MAX_ACTIVATION:
        raise InputError(
            f"input_shape: {h} x {w} x {c} holds {math.prod(shape)} numbers; at most "
            f"{MAX_ACTIVATION} are allowed"
        )
    return shape


def parse_layer(item: Any, index: int, defaults: Defaults | None = None) -> Layer:
    """One layer from a string or a table (see the module docstring for both forms)."""
    defaults = defaults or Defaults()
    if isinstance(item, str):
        return _from_string(item, f"layers[{index}]", defaults)
    if isinstance(item, dict):
        return _from_table(item, f"layers[{index}]", defaults)
    raise InputError(
        f"layers[{index}]: expected a layer string such as 'conv3-64' or a table with a "
        f"'kind' key, got {_show(item)}"
    )


def _kind(word: str, where: str, text: str | None = None) -> str:
    kind = word.lower().replace("-pool", "pool")
    if kind not in KINDS:
        within = f" in {_show(text)}" if text is not None and text != word else ""
        raise InputError(
            f"{where}: unknown kind {_show(word)}{within}; allowed kinds are {', '.join(KINDS)}"
        )
    return kind


def _from_string(text: str, where: str, defaults: Defaults) -> Layer:
    if len(text) > _MAX_TEXT:
        raise InputError(
            f"{where}: a layer string has at most {_MAX_TEXT} characters, got {len(text)}"
        )
    low = text.strip().lower()
    word = _WORD.match(low)
    kind = _kind(word.group() if word else low, where, text)
    m = _PATTERNS[kind].fullmatch(low)
    if not m:
        raise InputError(f"{where}: cannot read {_show(text)}; a layer string is one of: {GRAMMAR}")
    if kind in ("relu", "flatten", "softmax"):
        return Layer(kind)
    got = m.groupdict()
    opts = _options(got["opts"], kind, where, text)
    bias = "nobias" not in opts
    if kind == "fc":
        return Layer("fc", out=_digits(got["out"], f"{where}.units", "units", text), bias=bias)
    if got["kh"] is None:  # a pool without a kernel size
        kernel = (defaults.pool_kernel, defaults.pool_kernel)
    else:
        kh = _digits(got["kh"], f"{where}.kernel", "kernel", text)
        kernel = (kh, _digits(got["kw"], f"{where}.kernel", "kernel", text) if got["kw"] else kh)
    pad = opts.get("p", defaults.conv_padding if kind == "conv" else defaults.pool_padding)
    stride = opts.get("s", defaults.conv_stride if kind == "conv" else defaults.pool_stride)
    if kind == "conv":
        out = _digits(got["out"], f"{where}.out", "channels", text)
        return Layer("conv", kernel, out, pad, stride, bias)
    _check_pool_padding(*kernel, pad, f"{where}.padding")
    return Layer(kind, kernel, padding=pad, stride=stride)


def _options(opts: str, kind: str, where: str, text: str) -> dict[str, Any]:
    allowed = _STRING_OPTIONS.get(kind, ("nobias",))
    out: dict[str, Any] = {}
    for token in opts.split("/")[1:]:
        m = _OPTION.fullmatch(token)
        key = (m.group("key") or m.group("flag")) if m else None
        if key not in allowed:
            shown = ", ".join("/" + (a if a == "nobias" else f"{a}<n>") for a in allowed)
            raise InputError(
                f"{where}: option {_show('/' + token)} in {_show(text)} is not allowed for "
                f"{kind}; allowed options: {shown}"
            )
        if key in out:
            raise InputError(f"{where}: option /{key} is given twice in {_show(text)}")
        field = {"p": "padding", "s": "stride"}.get(key)
        out[key] = _digits(m.group("val"), f"{where}.{field}", field, text) if field else True
    return out


def _from_table(table: dict, where: str, defaults: Defaults) -> Layer:
    kind = _table_kind(table, where)
    if kind in ("relu", "flatten", "softmax"):
        return Layer(kind)
    bias = table.get("bias", True)
    if not isinstance(bias, bool):
        raise InputError(f"{where}.bias: expected true or false, got {_show(bias)}")
    if kind == "fc":
        return Layer("fc", out=_int(table["units"], f"{where}.units", "units"), bias=bias)
    kernel = _kernel(table.get("kernel", defaults.pool_kernel), f"{where}.kernel")
    conv = kind == "conv"
    pad = _int(
        table.get("padding", defaults.conv_padding if conv else defaults.pool_padding),
        f"{where}.padding",
        "padding",
    )
    stride = _int(
        table.get("stride", defaults.conv_stride if conv else defaults.pool_stride),
        f"{where}.stride",
        "stride",
    )
    if conv:
        return Layer(
            "conv", kernel, _int(table["out"], f"{where}.out", "channels"), pad, stride, bias
        )
    _check_pool_padding(*kernel, pad, f"{where}.padding")
    return Layer(kind, kernel, padding=pad, stride=stride)


def _table_kind(table: dict, where: str) -> str:
    """The kind of a layer table, once its keys are known to suit that kind."""
    if "kind" not in table:
        raise InputError(f"{where}: a layer table needs a 'kind' key; kinds: {', '.join(KINDS)}")
    if not isinstance(table["kind"], str):
        raise InputError(
            f"{where}.kind: expected one of {', '.join(KINDS)}, got {_show(table['kind'])}"
        )
    kind = _kind(table["kind"].strip(), f"{where}.kind")
    required, optional = _TABLE_KEYS[kind]
    allowed = ("kind", *required, *optional)
    for key in table:
        if key not in allowed:
            extra = " (it has no parameters)" if kind == "softmax" else ""
            raise InputError(
                f"{where}: unknown key {_show(key)} for {kind}{extra}; allowed keys: "
                f"{', '.join(allowed)}"
            )
    for key in required:
        if key not in table:
            raise InputError(f"{where}: {kind} needs the key {key!r}; keys: {', '.join(allowed)}")
    return kind


def _kernel(value: Any, field: str) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise InputError(f"{field}: expected k or [k_h, k_w], got {_show(list(value))}")
        return (_int(value[0], f"{field}[0]", "kernel"), _int(value[1], f"{field}[1]", "kernel"))
    k = _int(value, field, "kernel")
    return (k, k)


def _check_pool_padding(kh: int, kw: int, pad: int, field: str) -> None:
    # A pooling window lying wholly in the padding would pool nothing (frameworks refuse it).
    if pad > min(kh, kw) // 2:
        raise InputError(
            f"{field}: pooling padding {pad} is more than half the {kh}x{kw} window; "
            f"allowed 0 to {min(kh, kw) // 2}"
        )


def _int(value: Any, field: str, bound: str) -> int:
    lo, hi = BOUNDS[bound]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{field}: expected an integer from {lo} to {hi}, got {_show(value)}")
    return value


def _digits(text: str, field: str, bound: str, source: str) -> int:
    lo, hi = BOUNDS[bound]
    if len(text) > 12:  # refuse before converting: int() of huge digit strings is slow
        raise InputError(
            f"{field}: expected an integer from {lo} to {hi}, got a {len(text)}-digit number "
            f"(in {_show(source)})"
        )
    value = int(text)
    if not lo <= value <= hi:
        raise InputError(
            f"{field}: expected an integer from {lo} to {hi}, got {value} (in {_show(source)})"
        )
    return value


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**12:
        return f"an integer with {len(str(abs(value)))} digits"
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 40 else text[:37] + "..."


def with_channels(layer: Layer, out: int) -> Layer:
    """``layer`` with a different conv channel or fc unit count (for scaled-down copies)."""
    return replace(layer, out=out)
