"""Griffe extension: render the reStructuredText bits of survseg's numpydoc docstrings.

survseg's docstrings follow numpydoc, whose prose is reStructuredText; mkdocstrings renders
docstring text as Markdown. This extension rewrites, before rendering,

* ``:math:`x``` -> ``$x$`` and ``.. math::`` blocks -> ``$$ ... $$`` (pymdownx.arithmatex);
* ``:func:`~a.b```, ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``,
  ``:obj:``, ``:exc:`` -> inline code (the last dotted part when ``~`` is used);
* RST "simple tables" (rows framed by ``====  ====`` rules) -> Markdown tables;
* a paragraph ending in ``::`` followed by an indented block -> a fenced code block;
* ``\\ `` (RST's escaped space) -> nothing.

It changes only the rendered documentation, never the code.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|ref|term):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    target = re.sub(r"\s*<([^>]+)>$", "", target)  # :ref:`text <target>` -> text
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _math_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            indent = len(line) - len(line.lstrip())
            inline = stripped[len(".. math::") :].strip()
            body = [inline] if inline else []
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                body.append(lines[i])
                i += 1
            text = textwrap.dedent("\n".join(body)).strip("\n")
            # RST separates equations by blank lines; one aligned display keeps them apart
            eqs = [e.strip() for e in re.split(r"\n\s*\n", text) if e.strip()]
            pad = " " * indent
            out += [pad + "$$"]
            if len(eqs) > 1:
                out += [pad + "\\begin{gathered}"]
                out += [pad + (" \\\\\n" + pad).join(eqs)]
                out += [pad + "\\end{gathered}"]
            else:
                out += [pad + row for row in eqs[0].split("\n")] if eqs else []
            out += [pad + "$$", ""]
            continue
        out.append(line)
        i += 1
    return out


def _simple_tables(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        if _RULE.match(lines[i]):
            rule = lines[i]
            starts = [m.start() for m in re.finditer(r"=+", rule)]
            rows, j, rules = [], i + 1, 1
            while j < len(lines) and rules < 3:
                if _RULE.match(lines[j]):
                    rules += 1
                elif lines[j].strip():
                    cells = [
                        lines[j][a:b].strip()
                        for a, b in zip(starts, [*starts[1:], max(len(lines[j]), starts[-1] + 1)])
                    ]
                    rows.append(cells)
                else:
                    break
                j += 1
            if rows:
                pad = rule[: len(rule) - len(rule.lstrip())]
                # header row only when the table has a rule under its first row
                header = rows[0] if rules == 3 else [""] * len(starts)
                body = rows[1:] if rules == 3 else rows
                out.append(pad + "| " + " | ".join(header) + " |")
                out.append(pad + "|" + "---|" * len(starts))
                out += [pad + "| " + " | ".join(r) + " |" for r in body]
                out.append("")
                i = j
                continue
        out.append(lines[i])
        i += 1
    return out


def _literal_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and len(lines[j]) - len(lines[j].lstrip()) > indent:
                head = line.rstrip()[:-1].rstrip()
                out.append(head if head.strip() else "")
                block = []
                while j < len(lines) and (
                    not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
                ):
                    block.append(lines[j])
                    j += 1
                pad = " " * indent
                out += ["", pad + "```text"]
                out += [
                    pad + row for row in textwrap.dedent("\n".join(block)).strip("\n").split("\n")
                ]
                out += [pad + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return out


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with the RST constructs above rewritten as Markdown."""
    lines = text.split("\n")
    lines = _literal_blocks(_simple_tables(_math_blocks(lines)))
    text = "\n".join(lines)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(_role, text)
    return text.replace("\\ ", "")


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring once it is loaded."""

    def on_instance(self, *, obj, **kwargs) -> None:  # noqa: D401 - griffe hook
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
