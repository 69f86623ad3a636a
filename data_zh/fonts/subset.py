"""Regenerate the bundled Chinese font: ``python -m data_zh.fonts.subset [SOURCE.ttc]``.

Charts must show Chinese on a machine with no CJK font installed, so the package carries a subset of
Noto Sans CJK SC (SIL OFL 1.1): every GB2312 character (the 6763 common hanzi, level 1 + 2, and its
punctuation and symbol rows), printable Latin, Latin-1, general and CJK punctuation, full-width forms,
and every non-ASCII character in the packages' text files. The CFF outlines are converted to
TrueType (quadratic) outlines so every matplotlib backend, PDF included, can embed the file.

Made from Debian ``fonts-noto-cjk`` 1:20220127+repack1-1 (Noto Sans CJK 2.004), the SC face of
``NotoSansCJK-Regular.ttc``. Rerun after adding text with characters outside GB2312; a test checks
that the packages' characters are all covered.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from data_zh.fonts import BUNDLED_FAMILY, BUNDLED_FONT

DEFAULT_SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SOURCE_FAMILY = "Noto Sans CJK SC"
PACKAGES = ("ultra", "data_zh", "fusion", "screening", "demo")
TEXT_SUFFIXES = (".py", ".json", ".jsonl", ".md", ".yaml", ".txt", ".jinja")
_RANGES = (
    (0x20, 0x7E),  # printable ASCII
    (0xA0, 0xFF),  # Latin-1 supplement
    (0x2010, 0x205E),  # general punctuation
    (0x2190, 0x2199),  # arrows
    (0x2200, 0x22FF),  # mathematical operators
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0xFF01, 0xFF65),  # full-width forms
)


def gb2312_characters() -> set[str]:
    """Every character GB2312 encodes: symbol rows 1-9 and the hanzi of levels 1 and 2."""
    characters = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                characters.add(bytes((row, cell)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return characters


def package_text_files(root: Path) -> Iterator[Path]:
    """The tracked text files of the packages (labels, prompts, notices and builders live there)."""
    listed = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    for name in listed:
        if name.endswith(TEXT_SUFFIXES) and "tokenizer" not in name:
            yield root / name


def characters_in(files: Iterable[Path]) -> set[str]:
    """The non-ASCII characters of the given UTF-8 text files."""
    characters: set[str] = set()
    for path in files:
        characters.update(char for char in path.read_text(encoding="utf-8") if ord(char) > 0x7E)
    return characters


def wanted_characters(root: Path) -> set[str]:
    ranges = {chr(code) for first, last in _RANGES for code in range(first, last + 1)}
    return ranges | gb2312_characters() | characters_in(package_text_files(root))


def _source_face(source: Path):
    from fontTools.ttLib import TTCollection

    for face in TTCollection(source).fonts:
        if face["name"].getBestFamilyName() == SOURCE_FAMILY:
            return face
    raise SystemExit(f"{source}: no '{SOURCE_FAMILY}' face in this collection")


def _cff_to_truetype(font) -> None:
    """Replace the CFF table by quadratic glyf outlines (what the TrueType embedders expect)."""
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import newTable

    glyph_order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = glyph_order
    glyf.glyphs = {}
    for name in glyph_order:
        pen = TTGlyphPen(None)
        glyph_set[name].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
        glyf[name] = pen.glyph()
    font["loca"] = newTable("loca")
    font["glyf"] = glyf
    for tag in ("CFF ", "VORG"):
        if tag in font:
            del font[tag]
    font["head"].glyphDataFormat = 0
    font["maxp"].tableVersion = 0x00010000
    for field in ("maxZones", "maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs"):
        setattr(font["maxp"], field, 1 if field == "maxZones" else 0)
    for field in ("maxStackElements", "maxSizeOfInstructions", "maxComponentElements"):
        setattr(font["maxp"], field, 0)
    font["post"].formatType = 3.0
    font.sfntVersion = "\x00\x01\x00\x00"


def _rename(font) -> None:
    """A distinct family name, so the subset never stands in for an installed full Noto font."""
    name = font["name"]
    postscript = BUNDLED_FAMILY.replace(" ", "") + "-Regular"
    for record in list(name.names):
        if record.nameID in (16, 17, 21, 22):
            name.removeNames(nameID=record.nameID)
    for name_id, value in ((1, BUNDLED_FAMILY), (2, "Regular"), (3, postscript), (4, BUNDLED_FAMILY)):
        name.setName(value, name_id, 3, 1, 0x409)
        name.setName(value, name_id, 1, 0, 0)
    name.setName(postscript, 6, 3, 1, 0x409)
    name.setName(postscript, 6, 1, 0, 0)


def build(source: Path, output: Path, root: Path) -> int:
    """Write the subset font; returns how many characters it maps."""
    from fontTools import subset

    font = _source_face(source)
    options = subset.Options()
    # no vertical or other-locale alternates: charts set horizontal Simplified Chinese
    options.layout_features = ["kern", "palt"]
    options.hinting = False
    options.desubroutinize = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14]
    options.name_languages = [0x409, 0]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(char) for char in wanted_characters(root)])
    subsetter.subset(font)
    _cff_to_truetype(font)
    _rename(font)
    font["head"].modified = font["head"].created  # same input, same bytes
    font.recalcTimestamp = False
    font.save(output)
    return len(font.getBestCmap())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("-o", "--output", type=Path, default=BUNDLED_FONT)
    args = parser.parse_args()
    mapped = build(args.source, args.output, BUNDLED_FONT.parents[2])
    size = args.output.stat().st_size / 2**20
    print(f"{args.output}: {mapped} characters, {size:.1f} MiB")


if __name__ == "__main__":
    main()
