"""Numbers in prompt text rewritten as the words a caller should hear, in Mandarin and English.

Synthesisers guess at digits: espeak-ng reads "105" in Mandarin as 一零五, says "12.50" as
"twelve point five zero", reads a phone number as one large cardinal, and none of them know
that "3rd" is "third" or that 2 before a measure word is 两. Prompt text is therefore rewritten
here, before it reaches an engine, so every engine says the same, correct thing.

Rules (both languages): a digit run that starts with 0, is longer than six digits, is made
of groups joined by "-" or spaces ("400-800-1234", "138 0013 8000"), or follows a word that
announces an identifier (尾号, 分机, 验证码, "ending in", "extension", "code") is read digit by
digit, the groups separated by a pause; currency, clock
times, percentages, ordinals and decimals have their own readings; any other run is a cardinal.

Mandarin: 十二 (not 一十二) at the start, 一百一十, 一百零五, 一万零一十, 四位一组 (万, 亿, 万亿);
两 for a lone 2 before a measure word (两位, 两分钟, 两个; but 第二, 二月, 二号, 二十二) and
for a leading 2 of 百 and above (两百, 两千, 两万); amounts in 元角分 (12.50元 → 十二元五角), the
way amounts are said aloud; 4-digit years before 年 digit by digit (二零二五年).

English: hyphenated tens (twenty-one), British "and" after hundreds and before a final part
under a hundred (one hundred and five, one thousand and five: the extra syllable helps a
listener on a narrow-band line), ordinals from 1st/2nd/3rd/4th, "$12.50" → "twelve dollars
and fifty cents", times as "nine thirty", "nine oh five", "nine o'clock".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

LANGUAGES = ("zh", "en")

# Full-width digits and separators typed by Chinese input methods read like ASCII ones.
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．：％＄", "0123456789.:%$")

# --- Mandarin ---------------------------------------------------------------------------

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_POSITIONS = ("", "十", "百", "千")
_ZH_GROUPS = ("", "万", "亿", "万亿")
# Measure words and units before which a lone 2 is 两 (the longest match is tried first).
_ZH_COUNTERS = (
    "分钟", "秒钟", "小时", "星期", "个月", "位", "个", "分", "秒", "天", "周", "次", "张",
    "件", "名", "条", "元", "块", "角", "毛", "项", "种", "遍", "岁", "页", "笔", "台",
    "份", "人", "家", "本", "只", "层", "点", "年", "倍", "套", "部", "单", "趟", "声",
)


def zh_integer(n: int) -> str:
    """Mandarin cardinal: 0 → 零, 12 → 十二, 105 → 一百零五, 10010 → 一万零一十, 2000 → 两千.

    A lone 2 is 二 (第二, 二号); :func:`normalize` makes it 两 before a measure word.
    """
    if n < 0:
        return "负" + zh_integer(-n)
    if n == 0:
        return "零"
    if n >= 10**16:
        raise ValueError(f"{n} is too large to read as a Mandarin cardinal")
    groups: list[int] = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out: list[str] = []
    pending_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            pending_zero = bool(out)
            continue
        if out and (pending_zero or group < 1000):
            out.append("零")
        pending_zero = False
        if group == 2 and index and not out:
            out.append("两")  # 两万, 两亿
        else:
            out.append(_zh_group(group, first=not out))
        out.append(_ZH_GROUPS[index])
    return "".join(out)


def _zh_group(group: int, first: bool) -> str:
    """One group of four digits (千百十个); ``first``: it leads the whole number."""
    digits = (group // 1000, group // 100 % 10, group // 10 % 10, group % 10)
    out: list[str] = []
    zero = False
    for position, digit in zip((3, 2, 1, 0), digits, strict=True):
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        if first and not out and digit == 1 and position == 1:
            out.append("十")  # 十二, 十万: the 一 of a leading 一十 is not said
        elif digit == 2 and (position == 3 or (position == 2 and first and not out)):
            out.append("两" + _ZH_POSITIONS[position])  # 两千 anywhere (三万两千); 两百 leading
        else:
            out.append(_ZH_DIGITS[digit] + _ZH_POSITIONS[position])
    return "".join(out)


def zh_digits(digits: str, yao: bool = False) -> str:
    """Digit by digit (phone and account numbers); ``yao``: 1 as 幺, as operators say it."""
    table = _ZH_DIGITS.replace("一", "幺") if yao else _ZH_DIGITS
    return "".join(table[int(d)] for d in digits if d.isdigit())


def zh_decimal(integer: str, fraction: str) -> str:
    """3.14 → 三点一四: the fraction digit by digit, as Mandarin always reads it."""
    return zh_integer(int(integer or "0")) + "点" + zh_digits(fraction)


def zh_amount(integer: str, fraction: str = "", unit: str = "元") -> str:
    """Yuan, jiao and fen: 12.50 → 十二元五角, 12.05 → 十二元零五分, 0.50 → 五角, 2 → 两元."""
    yuan = int(integer.replace(",", "") or "0")
    cents = int((fraction + "00")[:2]) if fraction else 0
    jiao, fen = divmod(cents, 10)
    out = ""
    if yuan or not cents:
        out = _zh_counted(yuan) + unit
    if jiao:
        out += _zh_counted(jiao) + "角"
    if fen:
        if yuan and not jiao:
            out += "零"
        out += _zh_counted(fen) + "分"
    return out


def _zh_counted(n: int) -> str:
    """A cardinal before a measure word: a lone 2 is 两 (两位, 两分钟)."""
    return "两" if n == 2 else zh_integer(n)


# --- English ------------------------------------------------------------------------------

_EN_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_EN_SCALES = ("", "thousand", "million", "billion", "trillion")
_EN_ORDINAL = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}


def en_integer(n: int) -> str:
    """English cardinal: 21 → twenty-one, 105 → one hundred and five, 1005 → one thousand and five.

    The British "and" is kept on purpose: the extra syllable helps on a narrow-band line.
    """
    if n < 0:
        return "minus " + en_integer(-n)
    if n < 100:
        return _en_under_100(n)
    if n >= 10**15:
        raise ValueError(f"{n} is too large to read as an English cardinal")
    parts: list[str] = []
    scale = 0
    last_group = 0
    while n:
        n, group = divmod(n, 1000)
        if scale == 0:
            last_group = group
        if group:
            words = _en_under_1000(group)
            parts.append(f"{words} {_EN_SCALES[scale]}" if scale else words)
        scale += 1
    parts.reverse()
    if len(parts) > 1 and 0 < last_group < 100:
        parts[-1] = "and " + parts[-1]  # one thousand and five
    return " ".join(parts)


def _en_under_100(n: int) -> str:
    if n < 20:
        return _EN_ONES[n]
    tens, ones = divmod(n, 10)
    return _EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else "")


def _en_under_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _en_under_100(rest)
    words = f"{_EN_ONES[hundreds]} hundred"
    return f"{words} and {_en_under_100(rest)}" if rest else words


def en_ordinal(n: int) -> str:
    """3 → third, 21 → twenty-first, 100 → one hundredth."""
    words = en_integer(n)
    head, sep, last = words.rpartition(" ")
    prefix, hyphen, tail = last.rpartition("-")
    if tail in _EN_ORDINAL:
        tail = _EN_ORDINAL[tail]
    elif tail.endswith("y"):
        tail = tail[:-1] + "ieth"
    else:
        tail += "th"
    return head + sep + prefix + hyphen + tail


def en_digits(digits: str) -> str:
    """Digit by digit: 0 is "zero", which survives a noisy line better than "oh"."""
    return " ".join(_EN_ONES[int(d)] for d in digits if d.isdigit())


def en_decimal(integer: str, fraction: str) -> str:
    return en_integer(int(integer or "0")) + " point " + en_digits(fraction)


_EN_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}


def en_amount(integer: str, fraction: str = "", symbol: str = "$") -> str:
    """$12.50 → twelve dollars and fifty cents; $0.01 → one cent; $1 → one dollar."""
    one, many, cent, cents_word = _EN_CURRENCY[symbol]
    whole = int(integer.replace(",", "") or "0")
    cents = int((fraction + "00")[:2]) if fraction else 0
    parts = []
    if whole or not cents:
        parts.append(f"{en_integer(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{en_integer(cents)} {cent if cents == 1 else cents_word}")
    return " and ".join(parts)


# --- Rewriting text -----------------------------------------------------------------------

_NUMBER = r"\d{1,3}(?:,\d{3})+|\d+"
# A number ends at a sentence's full stop or comma, not at a decimal point ("3." vs "3.5").
_START = r"(?<!\d)(?<!\d[.,:])"
_END = r"(?!\d|[.,:]\d)"
_GROUPED_DIGITS = re.compile(rf"{_START}\d+(?:(?:-| )\d+)+{_END}(?!%)")
_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(?:\s*([AaPp])\.?[Mm]\.?(?!\w))?")
_PERCENT = re.compile(rf"({_NUMBER})(?:\.(\d+))?\s*%")
_ZH_MONEY = re.compile(
    rf"[¥￥]\s*({_NUMBER})(?:\.(\d{{1,2}}))?(?!\d)|({_NUMBER})(?:\.(\d{{1,2}}))?\s*(元)"
)
_EN_MONEY = re.compile(rf"([$€£])\s*({_NUMBER})(?:\.(\d{{1,2}}))?(?!\d)")
_ZH_DOLLARS = re.compile(rf"\$\s*({_NUMBER})(?:\.(\d+))?")
_ZH_YEAR = re.compile(r"(?<!\d)(\d{4})(?=年)")
_ZH_ORDINAL = re.compile(rf"第\s*({_NUMBER})")
_EN_ORDINAL_RE = re.compile(rf"{_START}(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(rf"{_START}(\d+)\.(\d+){_END}")
_INTEGER = re.compile(rf"{_START}({_NUMBER}){_END}")
# Digits after these words identify something (a card's last digits, an extension).
_ZH_ID_CONTEXT = re.compile(
    r"(尾号|号码|账号|卡号|工号|编号|分机号?|验证码|订单号)(是|为|：|:)?\s*(\d+)"
)
_EN_ID_CONTEXT = re.compile(
    r"\b(ending in|ends in|extension|ext\.|code|code is|account|card|reference)(\s+)(\d{2,})\b",
    re.IGNORECASE,
)
_ZH_UNIT_AFTER = re.compile(r"\s*(?:" + "|".join(_ZH_COUNTERS) + r"|万|亿)")


def _is_identifier(digits: str) -> bool:
    return (len(digits) > 1 and digits[0] == "0") or len(digits) > 6


def _group_pause(language: str) -> str:
    return "，" if language == "zh" else ", "


def _grouped(match: re.Match[str], language: str, yao: bool) -> str:
    groups = re.split(r"[- ]", match.group(0))
    if sum(len(g) for g in groups) < 7 and not any(g.startswith("0") for g in groups):
        if len(groups) == 2 and "-" in match.group(0):  # a range: 10-12 → 十到十二
            low, high = (int(g) for g in groups)
            if language == "zh":
                return f"{zh_integer(low)}到{zh_integer(high)}"
            return f"{en_integer(low)} to {en_integer(high)}"
        return match.group(0)  # "3 5": not an identifier, left to the next rules
    read = (lambda g: zh_digits(g, yao)) if language == "zh" else en_digits
    return _group_pause(language).join(read(g) for g in groups)


def _zh_time(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    suffix = match.group(3)
    prefix = {"a": "上午", "p": "下午"}.get(suffix.lower(), "") if suffix else ""
    text = prefix + _zh_counted(hour) + "点"
    if minute:
        text += ("零" if minute < 10 else "") + zh_integer(minute) + "分"
    return text


def _en_time(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    suffix = match.group(3)
    text = en_integer(hour)
    if minute == 0:
        text += "" if suffix else " o'clock"
    elif minute < 10:
        text += " oh " + en_integer(minute)
    else:
        text += " " + en_integer(minute)
    if suffix:
        text += " a.m." if suffix.lower() == "a" else " p.m."
    return text


def _zh_integer_in_text(match: re.Match[str], yao: bool) -> str:
    raw = match.group(1)
    digits = raw.replace(",", "")
    rest = match.string[match.end():]
    unit = _ZH_UNIT_AFTER.match(rest)
    if "," not in raw and _is_identifier(digits) and not unit:
        return zh_digits(digits, yao)
    value = int(digits)
    if value >= 10**16:
        return zh_digits(digits, yao)
    if value == 2 and unit:
        return "两"
    return zh_integer(value)


def _en_integer_in_text(match: re.Match[str]) -> str:
    raw = match.group(1)
    digits = raw.replace(",", "")
    if "," not in raw and _is_identifier(digits):
        return en_digits(digits)
    value = int(digits)
    return en_digits(digits) if value >= 10**15 else en_integer(value)


def _zh_money(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return zh_amount(match.group(1), match.group(2) or "")
    return zh_amount(match.group(3), match.group(4) or "", match.group(5))


def normalize(text: str, language: str, *, yao: bool = False) -> str:
    """``text`` with every number, amount, time and identifier spelled out in ``language``.

    ``yao`` (Mandarin): say 1 as 幺 in digit-by-digit identifiers.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r} (expected one of {LANGUAGES})")
    text = text.translate(_FULL_WIDTH)
    steps: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]
    if language == "zh":
        text = text.replace("#号", "#").replace("*号", "*")
        text = text.replace("#", "井号").replace("*", "星号")
        steps = [
            (_ZH_ID_CONTEXT, lambda m: m[1] + (m[2] or "") + zh_digits(m[3], yao)),
            (_GROUPED_DIGITS, lambda m: _grouped(m, "zh", yao)),
            (_ZH_MONEY, _zh_money),
            (_ZH_DOLLARS, lambda m: (zh_decimal(m.group(1).replace(",", ""), m.group(2))
                                     if m.group(2) else _zh_integer_in_text(m, yao)) + "美元"),
            (_TIME, _zh_time),
            (_PERCENT, lambda m: "百分之" + (
                zh_decimal(m.group(1).replace(",", ""), m.group(2)) if m.group(2)
                else zh_integer(int(m.group(1).replace(",", ""))))),
            (_ZH_YEAR, lambda m: zh_digits(m.group(1))),
            (_ZH_ORDINAL, lambda m: "第" + zh_integer(int(m.group(1).replace(",", "")))),
            (_DECIMAL, lambda m: zh_decimal(m.group(1), m.group(2))),
            (_INTEGER, lambda m: _zh_integer_in_text(m, yao)),
        ]
    else:
        text = re.sub(r"(?<!\w)#(?!\w)", "pound", text)
        text = re.sub(r"(?<![\w*])\*(?![\w*])", "star", text)
        steps = [
            (_EN_ID_CONTEXT, lambda m: m.group(1) + m.group(2) + en_digits(m.group(3))),
            (_GROUPED_DIGITS, lambda m: _grouped(m, "en", yao)),
            (_EN_MONEY, lambda m: en_amount(m.group(2), m.group(3) or "", m.group(1))),
            (_TIME, _en_time),
            (_PERCENT, lambda m: (
                en_decimal(m.group(1).replace(",", ""), m.group(2)) if m.group(2)
                else en_integer(int(m.group(1).replace(",", "")))) + " percent"),
            (_EN_ORDINAL_RE, lambda m: en_ordinal(int(m.group(1)))),
            (_DECIMAL, lambda m: en_decimal(m.group(1), m.group(2))),
            (_INTEGER, _en_integer_in_text),
        ]
    for pattern, replace in steps:
        text = pattern.sub(replace, text)
    return text


def spell_integer(n: int, language: str) -> str:
    """A cardinal in words: spell_integer(3, "zh") → 三, spell_integer(21, "en") → twenty-one."""
    if language == "zh":
        return zh_integer(n)
    if language == "en":
        return en_integer(n)
    raise ValueError(f"unknown language {language!r} (expected one of {LANGUAGES})")


# --- Announcements ------------------------------------------------------------------------


def say_position(position: int, language: str) -> str:
    """The queue-position announcement for the caller at ``position`` (1 = next to be served),
    in the wording each language's IVRs use: Mandarin counts the callers ahead (position 3:
    您前面还有两位。), English gives the caller's place (You are number three in line.), and
    the caller who is next is told so in both.
    """
    if position < 1:
        raise ValueError(f"queue position must be at least 1, not {position}")
    if language == "zh":
        return "您是下一位。" if position == 1 else f"您前面还有{_zh_counted(position - 1)}位。"
    if language == "en":
        if position == 1:
            return "You are next in line."
        return f"You are number {en_integer(position)} in line."
    raise ValueError(f"unknown language {language!r} (expected one of {LANGUAGES})")


def say_wait(minutes: float, language: str) -> str:
    """The expected-wait announcement, rounded to whole minutes (hours past 60).

    Under a minute is "less than a minute" / 不到一分钟; one minute is singular.
    """
    if math.isnan(minutes) or minutes < 0:
        raise ValueError(f"expected wait must be a non-negative number of minutes, not {minutes}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r} (expected one of {LANGUAGES})")
    if minutes < 1:
        return "预计等待时间不到一分钟。" if language == "zh" else (
            "Your expected wait is less than a minute."
        )
    whole = math.floor(minutes + 0.5)
    hours, rest = divmod(whole, 60)
    if language == "zh":
        spoken = ""
        if hours:
            spoken += _zh_counted(hours) + "小时"
        if rest or not hours:
            spoken += _zh_counted(rest) + "分钟"
        return f"预计等待时间约{spoken}。"
    parts = []
    if hours:
        parts.append(f"{en_integer(hours)} hour{'s' if hours != 1 else ''}")
    if rest or not hours:
        parts.append(f"{en_integer(rest)} minute{'s' if rest != 1 else ''}")
    return f"Your expected wait is about {' and '.join(parts)}."
