"""The pip lockfile format: header rendering and validation, and the body parser's edge cases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from envtiers.errors import EXIT_BAD_INPUT, LockfileFormatError, UnknownFormatError
from envtiers.pip import lockfile

H1 = "a" * 64
H2 = "b" * 64
BODY = f"""\
purepkg==2.0 \\
    --hash=sha256:{H1} \\
    --hash=sha256:{H2}
    # via -r envs/requirements.in
Plat_Pkg==1.0 \\
    --hash=sha256:{H1}
    # via
    #   markerpkg
"""


def write_lock(path: Path, body: str = BODY, **header: str) -> Path:
    fields = {"kind": "runtime", "platform": "linux-64", "python": "3.11", "input_hash": "sha256:" + "c" * 64}
    path.write_text(lockfile.render(**{**fields, **header}, body=body))
    return path


def test_render_then_read_round_trips(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt")

    lock = lockfile.read(path)

    assert lock.header == lockfile.Header(
        kind="runtime",
        platform="linux-64",
        python="3.11",
        input_hash="sha256:" + "c" * 64,
        body_sha256=hashlib.sha256(BODY.encode()).hexdigest(),
    )
    assert lock.body == BODY
    assert lock.body_intact
    assert path.read_text().splitlines()[1] == "# format-version: 1"


def test_render_ends_the_body_with_a_newline(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt", body=BODY.rstrip("\n"))

    assert lockfile.read(path).body == BODY
    assert lockfile.read(path).body_intact


def test_any_edit_of_the_body_breaks_its_digest(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt")
    path.write_text(path.read_text().replace("purepkg==2.0", "purepkg==2.1"))

    assert not lockfile.read(path).body_intact


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(LockfileFormatError, match=r"shown\.txt does not exist") as info:
        lockfile.read(tmp_path / "nothing.txt", display="shown.txt")
    assert info.value.fix == "run `make lock`"


def test_file_without_the_envtiers_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text(BODY)

    with pytest.raises(LockfileFormatError, match="has no envtiers header"):
        lockfile.read(path)


def test_header_missing_a_field_is_damaged(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt")
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if "input-hash" not in line))

    with pytest.raises(LockfileFormatError, match=r"damaged header \(missing input-hash\)"):
        lockfile.read(path)


def test_unknown_format_version_is_refused_with_exit_code_2(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt")
    path.write_text(path.read_text().replace("# format-version: 1", "# format-version: 99"))

    with pytest.raises(UnknownFormatError, match="has format version 99; this envtiers reads version 1") as info:
        lockfile.read(path)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_parse_body_joins_continuations_and_drops_comments() -> None:
    pins = lockfile.parse_body(BODY)

    assert [(p.name, p.version, p.hashes, p.line) for p in pins] == [
        ("purepkg", "2.0", (f"sha256:{H1}", f"sha256:{H2}"), 1),
        ("plat-pkg", "1.0", (f"sha256:{H1}",), 5),
    ]
    assert all(p.marker is None for p in pins)


@pytest.mark.parametrize("body", ["", "\n\n", "# only a comment\n    # via nothing\n"])
def test_parse_body_of_nothing_is_no_pins(body: str) -> None:
    assert lockfile.parse_body(body) == []


def test_parse_body_keeps_markers_of_universal_locks() -> None:
    body = f'purepkg==2.0 ; sys_platform == "linux" \\\n    --hash=sha256:{H1}\n'

    (pin,) = lockfile.parse_body(body)

    assert pin.marker == 'sys_platform == "linux"'
    assert pin.hashes == (f"sha256:{H1}",)


def test_parse_body_accepts_an_entry_without_hashes() -> None:
    # The checker, not the parser, reports the missing hash (with the line number).
    (pin,) = lockfile.parse_body("purepkg==2.0\n")

    assert pin.hashes == ()


def test_parse_body_accepts_sha384_and_sha512() -> None:
    body = f"purepkg==2.0 --hash=sha384:{'d' * 96} --hash=sha512:{'e' * 128}\n"

    (pin,) = lockfile.parse_body(body)

    assert pin.hashes == (f"sha384:{'d' * 96}", f"sha512:{'e' * 128}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("purepkg==2.0 \\\n", r"lock\.txt:1: entry ends in a line continuation \(truncated file\?\)"),
        (f"purepkg==2.0 \\\n    --hash=sha256:{H1} \\\n", r"lock\.txt:1: entry ends in a line continuation"),
        ("purepkg>=2.0\n", r"lock\.txt:1: purepkg is not pinned with a single `==`"),
        ("purepkg==2.0,<3\n", r"purepkg is not pinned with a single `==`"),
        ("purepkg\n", r"purepkg is not pinned with a single `==`"),
        (f"purepkg==2.0 --hash=md5:{H1}\n", r"lock\.txt:1: malformed hash '--hash=md5"),
        ("purepkg==2.0 --hash=sha256:NOTHEX\n", r"malformed hash"),
        ("ok==1.0\n!!! not a requirement\n", r"lock\.txt:2: expected `name==version --hash=\.\.\.`"),
    ],
    ids=[
        "cut-after-name",
        "cut-after-hash",
        "lower-bound",
        "two-specifiers",
        "unpinned",
        "md5",
        "hash-not-hex",
        "not-a-requirement",
    ],
)
def test_parse_body_refuses_what_is_not_a_hashed_pin(body: str, message: str) -> None:
    with pytest.raises(LockfileFormatError, match=message):
        lockfile.parse_body(body, path=Path("lock.txt"))


def test_pins_of_a_read_lock_name_its_file_in_errors(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt", body="purepkg>=2\n")

    with pytest.raises(LockfileFormatError, match=r"lock\.txt:8: purepkg is not pinned"):
        _ = lockfile.read(path).pins


def test_line_numbers_of_a_read_lock_count_from_the_top_of_the_file(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "lock.txt")
    lines = path.read_text().splitlines()

    pins = lockfile.read(path).pins

    assert [lines[pin.line - 1].split(" ")[0] for pin in pins] == ["purepkg==2.0", "Plat_Pkg==1.0"]
    assert lockfile.parse_body(BODY, first_line=8)[0].line == 8
