"""The stream reference, rendered from the registry for the README and the example config.

The README's stream table, the README's per-stream settings and the example config's
`[streams.<name>]` sections sit between marker lines and are this module's output; a test
fails when they are stale. `python -m sitoo_sync.streams.reference` rewrites them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.base import Stream

ROOT = Path(__file__).resolve().parent.parent.parent
README = ROOT / "README.md"
EXAMPLE = ROOT / "config" / "sitoo-sync.example.toml"


def _endpoint(stream: Stream) -> str:
    return f"`{stream.path}` ({stream.api.value})"


def readme_streams() -> str:
    """The README's table of streams: name, endpoint, what one cursor covers, schedule."""
    lines = [
        "| stream | endpoint | one cursor per | how it reads | every | what it loads |",
        "|---|---|---|---|---|---|",
    ]
    for s in STREAMS.values():
        opt_in = " Opt-in: only when `SITOO_STREAMS` names it." if not s.enabled_by_default else ""
        how = s.cursor.summary()
        if s.full_refresh:
            how += "; rows no longer listed get `missing_since`"
        lines.append(
            f"| `{s.name}` | {_endpoint(s)} | {s.partitions.kind} | {how} "
            f"| {s.default_schedule} | {s.description}.{opt_in} |"
        )
    return "\n".join(lines)


def _default(stream: Stream, name: str) -> object:
    return getattr(stream.cursor, name)


def readme_stream_settings() -> str:
    """The README's table of every stream's own settings (environment variable form)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in STREAMS.values():
        for option in s.options:
            env, *aliases = option.env_names(s.name)
            names = " / ".join(f"`{n}`" for n in (env, *aliases))
            default = _default(s, option.name)
            shown = "-" if default is None else f"`{default}`"
            rows.append(f"| {names} | {shown} | {s.name}: {option.description} |")
    return "\n".join(rows)


def toml_stream_sections() -> str:
    """The example config's commented `[streams.<name>]` sections, defaults shown."""
    lines = []
    for s in STREAMS.values():
        if not s.options:
            continue
        lines.append(f"# [streams.{s.name}]")
        for option in s.options:
            default = _default(s, option.name)
            if default is not None:
                value = _toml(default)
            elif "date" in str(option.type):
                value = "2026-01-01"  # an example: unset, the stream's own rule applies
            else:
                value = ""  # unset: the description says what applies
            lines.append(f"# {option.name} = {value}".ljust(34) + f"# {option.description}")
    return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


#: (file, marker name, renderer): each block sits between `<!-- name -->` / `# name` lines.
BLOCKS = (
    (README, "streams", readme_streams),
    (README, "stream-settings", readme_stream_settings),
    (EXAMPLE, "streams", toml_stream_sections),
)


def _markers(path: Path, name: str) -> tuple[str, str]:
    if path.suffix == ".md":
        return f"<!-- {name}: generated from the stream registry -->", f"<!-- /{name} -->"
    return f"# <{name}: generated from the stream registry>", f"# </{name}>"


def rendered(path: Path, text: str) -> str:
    """`text` (the file at `path`) with every generated block brought up to date."""
    for file, name, render in BLOCKS:
        if file != path:
            continue
        start, end = _markers(path, name)
        head, found, rest = text.partition(start + "\n")
        if not found or end not in rest:
            raise ValueError(f"{path.name}: the markers of block {name!r} are missing")
        _old, _, tail = rest.partition(end)
        text = f"{head}{start}\n{render()}\n{end}{tail}"
    return text


def main() -> int:
    """Rewrite the generated blocks in place; print which files changed."""
    for path in dict.fromkeys(file for file, _name, _render in BLOCKS):
        text = path.read_text()
        new = rendered(path, text)
        if new != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
