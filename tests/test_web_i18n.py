"""Every string of the screens exists in 简体中文 and English: the two languages' message files
(``locales/<lang>/<area>.json``) have the same keys, each top-level key is defined by one file
only, and every key the sources use (``t('...')``) is in both."""

from __future__ import annotations

import json
import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "web" / "src"
KEY = re.compile(r"""\bt\(\s*['"`]([a-z_]+(?:\.[a-z_]+)+)['"`]""")
TEMPLATE_KEY = re.compile(r"""\bt\(\s*`([a-z_]+)\.\$\{""")  # t(`states.${x}`): a whole group


def keys(tree: dict[str, object], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, value in tree.items():
        path = f"{prefix}{name}"
        out |= keys(value, f"{path}.") if isinstance(value, dict) else {path}
    return out


def files(lang: str) -> dict[str, dict[str, object]]:
    found = sorted((WEB / "locales" / lang).glob("*.json"))
    assert found, f"no message files for {lang}"
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in found}


def messages(lang: str) -> set[str]:
    merged: dict[str, object] = {}
    for tree in files(lang).values():
        merged.update(tree)
    return keys(merged)


def test_each_area_owns_its_top_level_keys() -> None:
    for lang in ("zh", "en"):
        owner: dict[str, str] = {}
        for name, tree in files(lang).items():
            for top in tree:
                assert top not in owner, f"{lang}: '{top}' in both {owner.get(top)} and {name}"
                owner[top] = name
    assert set(files("zh")) == set(files("en")), "the same files in both languages"


def test_both_languages_have_the_same_keys() -> None:
    zh, en = messages("zh"), messages("en")
    assert zh - en == set(), "only in Chinese"
    assert en - zh == set(), "only in English"


def test_every_key_the_screens_use_is_translated() -> None:
    zh = messages("zh")
    sources = [p for p in WEB.rglob("*") if p.suffix in (".vue", ".js")]
    used = {k for p in sources for k in KEY.findall(p.read_text(encoding="utf-8"))}
    groups = {g for p in sources for g in TEMPLATE_KEY.findall(p.read_text(encoding="utf-8"))}
    assert used, "no t('...') found: the pattern no longer matches the sources"
    assert sorted(used - zh) == []
    for group in groups:
        assert any(k.startswith(f"{group}.") for k in zh), group
    # the states an agent can be in, as the server names them, all have a label
    assert {f"states.{s}" for s in ("logged_out", "ready", "not_ready", "reserved", "busy",
                                    "wrap_up")} <= zh
