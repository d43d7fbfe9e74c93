"""Numbers in prompt text become the words a caller should hear, in Mandarin and English."""

from __future__ import annotations

import pytest

from hotline.media.speech_numbers import (
    en_integer,
    en_ordinal,
    normalize,
    say_position,
    say_wait,
    spell_integer,
    zh_amount,
    zh_digits,
    zh_integer,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "零"),
        (1, "一"),
        (2, "二"),
        (3, "三"),
        (10, "十"),
        (11, "十一"),
        (12, "十二"),
        (20, "二十"),
        (22, "二十二"),
        (100, "一百"),
        (101, "一百零一"),
        (105, "一百零五"),
        (110, "一百一十"),
        (115, "一百一十五"),
        (200, "两百"),
        (1000, "一千"),
        (1001, "一千零一"),
        (1010, "一千零一十"),
        (2000, "两千"),
        (10000, "一万"),
        (10010, "一万零一十"),
        (20000, "两万"),
        (32000, "三万两千"),
        (100000, "十万"),
        (100100, "十万零一百"),
        (1001000, "一百万一千"),
        (100000000, "一亿"),
        (100000001, "一亿零一"),
        (120000000, "一亿两千万"),
        (10**12, "一万亿"),
        (-5, "负五"),
    ],
)
def test_zh_integer(n: int, words: str) -> None:
    assert zh_integer(n) == words


def test_zh_integer_refuses_what_it_cannot_name() -> None:
    with pytest.raises(ValueError):
        zh_integer(10**16)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (1, "one"),
        (13, "thirteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (100, "one hundred"),
        (105, "one hundred and five"),
        (110, "one hundred and ten"),
        (1000, "one thousand"),
        (1005, "one thousand and five"),
        (1234, "one thousand two hundred and thirty-four"),
        (10010, "ten thousand and ten"),
        (2_000_000, "two million"),
        (1_000_001, "one million and one"),
    ],
)
def test_en_integer(n: int, words: str) -> None:
    assert en_integer(n) == words
    assert spell_integer(n, "en") == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (11, "eleventh"),
     (12, "twelfth"), (20, "twentieth"), (21, "twenty-first"), (105, "one hundred and fifth"),
     (100, "one hundredth")],
)
def test_en_ordinal(n: int, words: str) -> None:
    assert en_ordinal(n) == words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("您前面还有3位", "您前面还有三位"),
        ("您前面还有2位", "您前面还有两位"),
        ("约2分钟", "约两分钟"),
        ("2个", "两个"),
        ("2万元", "两万元"),
        ("第2位", "第二位"),  # an ordinal is never 两
        ("第12位", "第十二位"),
        ("22位", "二十二位"),
        ("2月2号", "二月二号"),  # dates are not counted things
        ("请按2", "请按二"),  # a key is a digit
        ("请按1查询，按0转人工", "请按一查询，按零转人工"),
        ("10010分", "一万零一十分"),
        ("12.50元", "十二元五角"),  # amounts as said aloud
        ("12.05元", "十二元零五分"),
        ("0.50元", "五角"),
        ("100.00元", "一百元"),
        ("2元", "两元"),
        ("￥1,234.56", "一千二百三十四元五角六分"),
        ("3.85%", "百分之三点八五"),
        ("2.5小时", "二点五小时"),
        ("9:00", "九点"),
        ("10:30", "十点三十分"),
        ("2:05", "两点零五分"),
        ("2025年", "二零二五年"),
        ("13800138000", "一三八零零一三八零零零"),  # a phone number, digit by digit
        ("0012345", "零零一二三四五"),  # a leading zero makes an identifier
        ("400-800-1234", "四零零，八零零，一二三四"),
        ("尾号8866", "尾号八八六六"),
        ("请按#号键", "请按井号键"),
        ("请按*键", "请按星号键"),
        ("１２３", "一百二十三"),  # full-width digits from a Chinese input method
        ("请按9。", "请按九。"),
        ("10-12人", "十到十二人"),
        ("没有数字。", "没有数字。"),
    ],
)
def test_normalize_zh(text: str, spoken: str) -> None:
    assert normalize(text, "zh") == spoken


def test_zh_digits_with_yao() -> None:
    assert zh_digits("110") == "一一零"
    assert zh_digits("110", yao=True) == "幺幺零"
    assert normalize("拨打13800138000", "zh", yao=True) == "拨打幺三八零零幺三八零零零"


def test_zh_amount() -> None:
    assert zh_amount("12", "5") == "十二元五角"
    assert zh_amount("0", "01") == "一分"
    assert zh_amount("0") == "零元"
    assert zh_amount("3", "", unit="块") == "三块"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("you are number 3 in line", "you are number three in line"),
        ("press 1 for billing, press 0 for an operator", "press one for billing, press zero "
         "for an operator"),
        ("21 days", "twenty-one days"),
        ("105 points", "one hundred and five points"),
        ("1,000 points", "one thousand points"),
        ("the 3rd caller", "the third caller"),
        ("May 21st", "May twenty-first"),
        ("$12.50", "twelve dollars and fifty cents"),
        ("$12.5", "twelve dollars and fifty cents"),
        ("$1.01", "one dollar and one cent"),
        ("$0.50", "fifty cents"),
        ("$12", "twelve dollars"),
        ("$1,234.00", "one thousand two hundred and thirty-four dollars"),
        ("£3.20", "three pounds and twenty pence"),
        ("9:00", "nine o'clock"),
        ("9:05 am", "nine oh five a.m."),
        ("5:30 pm", "five thirty p.m."),
        ("2.5 hours", "two point five hours"),
        ("50%", "fifty percent"),
        ("1-800-555-0199", "one, eight zero zero, five five five, zero one nine nine"),
        ("13800138000", "one three eight zero zero one three eight zero zero zero"),
        ("account 0012", "account zero zero one two"),
        ("ending in 8866", "ending in eight eight six six"),
        ("press #", "press pound"),
        ("press 9.", "press nine."),  # a full stop is not a decimal point
        ("press 1, 2 or 3.", "press one, two or three."),
        ("call 1-800-555-0199.", "call one, eight zero zero, five five five, zero one nine nine."),
        ("rate 3.85.", "rate three point eight five."),
        ("10-12 people", "ten to twelve people"),
        ("no numbers here.", "no numbers here."),
    ],
)
def test_normalize_en(text: str, spoken: str) -> None:
    assert normalize(text, "en") == spoken


def test_unknown_language() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        normalize("1", "fr")
    with pytest.raises(ValueError):
        spell_integer(1, "fr")


@pytest.mark.parametrize(
    ("n", "zh", "en"),
    [
        (1, "您是下一位。", "You are next in line."),
        (2, "您前面还有一位。", "You are number two in line."),
        (3, "您前面还有两位。", "You are number three in line."),
        (4, "您前面还有三位。", "You are number four in line."),
        (13, "您前面还有十二位。", "You are number thirteen in line."),
        (22, "您前面还有二十一位。", "You are number twenty-two in line."),
        (106, "您前面还有一百零五位。", "You are number one hundred and six in line."),
    ],
)
def test_say_position(n: int, zh: str, en: str) -> None:
    assert say_position(n, "zh") == zh
    assert say_position(n, "en") == en


def test_say_position_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        say_position(0, "en")
    with pytest.raises(ValueError):
        say_position(3, "fr")


@pytest.mark.parametrize(
    ("minutes", "zh", "en"),
    [
        (0, "预计等待时间不到一分钟。", "Your expected wait is less than a minute."),
        (0.6, "预计等待时间不到一分钟。", "Your expected wait is less than a minute."),
        (1, "预计等待时间约一分钟。", "Your expected wait is about one minute."),
        (1.4, "预计等待时间约一分钟。", "Your expected wait is about one minute."),
        (1.5, "预计等待时间约两分钟。", "Your expected wait is about two minutes."),
        (2, "预计等待时间约两分钟。", "Your expected wait is about two minutes."),
        (12, "预计等待时间约十二分钟。", "Your expected wait is about twelve minutes."),
        (60, "预计等待时间约一小时。", "Your expected wait is about one hour."),
        (125, "预计等待时间约两小时五分钟。",
         "Your expected wait is about two hours and five minutes."),
    ],
)
def test_say_wait(minutes: float, zh: str, en: str) -> None:
    assert say_wait(minutes, "zh") == zh
    assert say_wait(minutes, "en") == en


def test_say_wait_rejects_nonsense() -> None:
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError):
            say_wait(bad, "zh")
