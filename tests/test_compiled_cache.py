"""What derive keeps compiled in its cache folder: templates (``derive.render.document.
_Compiled``) and grammars' parsers (``derive.model.equations.lalr_parser``)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import lark
import pytest

from derive.engine import native
from derive.model import equations
from derive.render import document
from derive.render.latex import Notation


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DERIVE_CACHE", str(folder))
    # A process that has compiled nothing yet.
    monkeypatch.setattr(document, "_COMPILED", document._Compiled())
    return folder


def render_base() -> str:
    return document.environment(Notation()).get_template("base.tex.j2").render()


def no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a template was compiled")

    monkeypatch.setattr(jinja2.Environment, "compile", refuse)


def test_a_new_process_loads_the_code_instead_of_compiling(cache, monkeypatch) -> None:
    first = render_base()
    stored = sorted(cache.glob("template-*.jinja"))
    assert len(stored) == 1
    monkeypatch.setattr(document, "_COMPILED", document._Compiled())  # the next command
    no_compiling(monkeypatch)
    assert render_base() == first


def test_a_damaged_file_is_compiled_again(cache, monkeypatch) -> None:
    first = render_base()
    (stored,) = cache.glob("template-*.jinja")
    data = bytearray(stored.read_bytes())
    data[20] ^= 1  # one bit of the code, not of its signature
    stored.write_bytes(bytes(data))
    monkeypatch.setattr(document, "_COMPILED", document._Compiled())
    compiled = []
    real = jinja2.Environment.compile

    def counting(self, *args, **kwargs):
        compiled.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    assert render_base() == first
    assert len(compiled) == 1  # compiled again, and stored again, signed
    monkeypatch.setattr(document, "_COMPILED", document._Compiled())
    no_compiling(monkeypatch)
    assert render_base() == first


def test_an_edited_template_compiles_again(cache, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "t.j2").write_text("one")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), bytecode_cache=document._COMPILED
    )
    assert env.get_template("t.j2").render() == "one"
    (folder / "t.j2").write_text("two")
    monkeypatch.setattr(document, "_COMPILED", document._Compiled())
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), bytecode_cache=document._COMPILED
    )
    assert env.get_template("t.j2").render() == "two"


def test_only_what_derive_signed_is_loaded(cache) -> None:
    native.store_signed("template-x.jinja", b"code")
    assert native.load_signed("template-x.jinja", 100) == b"code"
    path = cache / "template-x.jinja"
    signed = path.read_bytes()
    path.write_bytes(b"c0de" + signed[4:])  # the bytes changed, the signature kept
    assert native.load_signed("template-x.jinja", 100) is None
    path.write_bytes(b"code")  # no signature at all
    assert native.load_signed("template-x.jinja", 100) is None
    (cache / "template-y.jinja").write_bytes(signed)  # signed for another name
    assert native.load_signed("template-y.jinja", 100) is None
    assert native.load_signed("template-z.jinja", 100) is None  # absent
    path.write_bytes(signed)
    assert native.load_signed("template-x.jinja", 3) is None  # larger than allowed


def test_a_parser_is_built_once_and_then_loaded(cache, monkeypatch) -> None:
    built = equations.lalr_parser(equations._GRAMMAR)
    (stored,) = cache.glob("grammar-*.lark")
    real = lark.Lark.__init__

    def refuse(self, *args, **kwargs):
        raise AssertionError("a parser was built")

    monkeypatch.setattr(lark.Lark, "__init__", refuse)
    loaded = equations.lalr_parser(equations._GRAMMAR)
    text = "h = (1 - f)*h[t-1] + f*tanh(w*x)"
    assert loaded.parse(text) == built.parse(text)
    stored.write_bytes(b"not a parser")  # unsigned: built again
    monkeypatch.setattr(lark.Lark, "__init__", real)
    assert equations.lalr_parser(equations._GRAMMAR).parse(text) == built.parse(text)
    assert native.load_signed(stored.name, 2**20) is not None  # and stored again, signed
