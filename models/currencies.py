"""ISO 4217 currencies: which codes are valid and how many minor units each has.

The table below is ISO 4217 "List One" (current currency, fund and precious-metal codes) as
published by SIX, the ISO 4217 maintenance agency, on 2026-01-01; that edition includes every
amendment up to number 180 (Bulgaria joined the euro and BGN was withdrawn on 2026-01-01), and no
later amendment was found when the list was checked in late 2026. Recent changes: ZWG (924)
replaced ZWL (amendment 177, 2024), XCG (532) replaced ANG on 2025-03-31 and kept its numeric code
(amendment 176), CUC went to the historic list (amendment 178), XAD (396) was added (amendment 179);
HRK, SLL, MRO, STD and VEF had already been withdrawn. Withdrawn codes live on ISO's "List Three"
and are deliberately absent here. CONTRACT §1 says amounts are integers in minor units and a
currency must be a known ISO 4217 alpha-3 code, so this module decides both what "known" means and
how many digits an amount's minor units carry; the numeric code gives state encodings a stable
small integer (unique within List One) in place of the three-letter string.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Currency(NamedTuple):
    """One List One entry."""

    alpha: str
    numeric: int
    exponent: int | None  # None where ISO 4217 gives "N.A." (metals, XXX ...)


CURRENCIES: Final[dict[str, Currency]] = {
    "AED": Currency("AED", 784, 2),
    "AFN": Currency("AFN", 971, 2),
    "ALL": Currency("ALL", 8, 2),
    "AMD": Currency("AMD", 51, 2),
    "AOA": Currency("AOA", 973, 2),
    "ARS": Currency("ARS", 32, 2),
    "AUD": Currency("AUD", 36, 2),
    "AWG": Currency("AWG", 533, 2),
    "AZN": Currency("AZN", 944, 2),
    "BAM": Currency("BAM", 977, 2),
    "BBD": Currency("BBD", 52, 2),
    "BDT": Currency("BDT", 50, 2),
    "BHD": Currency("BHD", 48, 3),
    "BIF": Currency("BIF", 108, 0),
    "BMD": Currency("BMD", 60, 2),
    "BND": Currency("BND", 96, 2),
    "BOB": Currency("BOB", 68, 2),
    "BOV": Currency("BOV", 984, 2),
    "BRL": Currency("BRL", 986, 2),
    "BSD": Currency("BSD", 44, 2),
    "BTN": Currency("BTN", 64, 2),
    "BWP": Currency("BWP", 72, 2),
    "BYN": Currency("BYN", 933, 2),
    "BZD": Currency("BZD", 84, 2),
    "CAD": Currency("CAD", 124, 2),
    "CDF": Currency("CDF", 976, 2),
    "CHE": Currency("CHE", 947, 2),
    "CHF": Currency("CHF", 756, 2),
    "CHW": Currency("CHW", 948, 2),
    "CLF": Currency("CLF", 990, 4),
    "CLP": Currency("CLP", 152, 0),
    "CNY": Currency("CNY", 156, 2),
    "COP": Currency("COP", 170, 2),
    "COU": Currency("COU", 970, 2),
    "CRC": Currency("CRC", 188, 2),
    "CUP": Currency("CUP", 192, 2),
    "CVE": Currency("CVE", 132, 2),
    "CZK": Currency("CZK", 203, 2),
    "DJF": Currency("DJF", 262, 0),
    "DKK": Currency("DKK", 208, 2),
    "DOP": Currency("DOP", 214, 2),
    "DZD": Currency("DZD", 12, 2),
    "EGP": Currency("EGP", 818, 2),
    "ERN": Currency("ERN", 232, 2),
    "ETB": Currency("ETB", 230, 2),
    "EUR": Currency("EUR", 978, 2),
    "FJD": Currency("FJD", 242, 2),
    "FKP": Currency("FKP", 238, 2),
    "GBP": Currency("GBP", 826, 2),
    "GEL": Currency("GEL", 981, 2),
    "GHS": Currency("GHS", 936, 2),
    "GIP": Currency("GIP", 292, 2),
    "GMD": Currency("GMD", 270, 2),
    "GNF": Currency("GNF", 324, 0),
    "GTQ": Currency("GTQ", 320, 2),
    "GYD": Currency("GYD", 328, 2),
    "HKD": Currency("HKD", 344, 2),
    "HNL": Currency("HNL", 340, 2),
    "HTG": Currency("HTG", 332, 2),
    "HUF": Currency("HUF", 348, 2),
    "IDR": Currency("IDR", 360, 2),
    "ILS": Currency("ILS", 376, 2),
    "INR": Currency("INR", 356, 2),
    "IQD": Currency("IQD", 368, 3),
    "IRR": Currency("IRR", 364, 2),
    "ISK": Currency("ISK", 352, 0),
    "JMD": Currency("JMD", 388, 2),
    "JOD": Currency("JOD", 400, 3),
    "JPY": Currency("JPY", 392, 0),
    "KES": Currency("KES", 404, 2),
    "KGS": Currency("KGS", 417, 2),
    "KHR": Currency("KHR", 116, 2),
    "KMF": Currency("KMF", 174, 0),
    "KPW": Currency("KPW", 408, 2),
    "KRW": Currency("KRW", 410, 0),
    "KWD": Currency("KWD", 414, 3),
    "KYD": Currency("KYD", 136, 2),
    "KZT": Currency("KZT", 398, 2),
    "LAK": Currency("LAK", 418, 2),
    "LBP": Currency("LBP", 422, 2),
    "LKR": Currency("LKR", 144, 2),
    "LRD": Currency("LRD", 430, 2),
    "LSL": Currency("LSL", 426, 2),
    "LYD": Currency("LYD", 434, 3),
    "MAD": Currency("MAD", 504, 2),
    "MDL": Currency("MDL", 498, 2),
    "MGA": Currency("MGA", 969, 2),
    "MKD": Currency("MKD", 807, 2),
    "MMK": Currency("MMK", 104, 2),
    "MNT": Currency("MNT", 496, 2),
    "MOP": Currency("MOP", 446, 2),
    "MRU": Currency("MRU", 929, 2),
    "MUR": Currency("MUR", 480, 2),
    "MVR": Currency("MVR", 462, 2),
    "MWK": Currency("MWK", 454, 2),
    "MXN": Currency("MXN", 484, 2),
    "MXV": Currency("MXV", 979, 2),
    "MYR": Currency("MYR", 458, 2),
    "MZN": Currency("MZN", 943, 2),
    "NAD": Currency("NAD", 516, 2),
    "NGN": Currency("NGN", 566, 2),
    "NIO": Currency("NIO", 558, 2),
    "NOK": Currency("NOK", 578, 2),
    "NPR": Currency("NPR", 524, 2),
    "NZD": Currency("NZD", 554, 2),
    "OMR": Currency("OMR", 512, 3),
    "PAB": Currency("PAB", 590, 2),
    "PEN": Currency("PEN", 604, 2),
    "PGK": Currency("PGK", 598, 2),
    "PHP": Currency("PHP", 608, 2),
    "PKR": Currency("PKR", 586, 2),
    "PLN": Currency("PLN", 985, 2),
    "PYG": Currency("PYG", 600, 0),
    "QAR": Currency("QAR", 634, 2),
    "RON": Currency("RON", 946, 2),
    "RSD": Currency("RSD", 941, 2),
    "RUB": Currency("RUB", 643, 2),
    "RWF": Currency("RWF", 646, 0),
    "SAR": Currency("SAR", 682, 2),
    "SBD": Currency("SBD", 90, 2),
    "SCR": Currency("SCR", 690, 2),
    "SDG": Currency("SDG", 938, 2),
    "SEK": Currency("SEK", 752, 2),
    "SGD": Currency("SGD", 702, 2),
    "SHP": Currency("SHP", 654, 2),
    "SLE": Currency("SLE", 925, 2),  # amendment 171 (2022): redenominated leone; SLL withdrawn
    "SOS": Currency("SOS", 706, 2),
    "SRD": Currency("SRD", 968, 2),
    "SSP": Currency("SSP", 728, 2),
    "STN": Currency("STN", 930, 2),
    "SVC": Currency("SVC", 222, 2),
    "SYP": Currency("SYP", 760, 2),
    "SZL": Currency("SZL", 748, 2),
    "THB": Currency("THB", 764, 2),
    "TJS": Currency("TJS", 972, 2),
    "TMT": Currency("TMT", 934, 2),
    "TND": Currency("TND", 788, 3),
    "TOP": Currency("TOP", 776, 2),
    "TRY": Currency("TRY", 949, 2),
    "TTD": Currency("TTD", 780, 2),
    "TWD": Currency("TWD", 901, 2),
    "TZS": Currency("TZS", 834, 2),
    "UAH": Currency("UAH", 980, 2),
    "UGX": Currency("UGX", 800, 0),
    "USD": Currency("USD", 840, 2),
    "USN": Currency("USN", 997, 2),
    "UYI": Currency("UYI", 940, 0),
    "UYU": Currency("UYU", 858, 2),
    "UYW": Currency("UYW", 927, 4),
    "UZS": Currency("UZS", 860, 2),
    "VED": Currency("VED", 926, 2),  # amendment 170 (2021): digital bolivar, alongside VES
    "VES": Currency("VES", 928, 2),
    "VND": Currency("VND", 704, 0),
    "VUV": Currency("VUV", 548, 0),
    "WST": Currency("WST", 882, 2),
    "XAD": Currency("XAD", 396, 2),  # amendment 179 (2025-05-12): Arab Monetary Fund
    "XAF": Currency("XAF", 950, 0),
    "XAG": Currency("XAG", 961, None),
    "XAU": Currency("XAU", 959, None),
    "XBA": Currency("XBA", 955, None),
    "XBB": Currency("XBB", 956, None),
    "XBC": Currency("XBC", 957, None),
    "XBD": Currency("XBD", 958, None),
    "XCD": Currency("XCD", 951, 2),
    "XCG": Currency("XCG", 532, 2),  # amendment 176 (2025-03-31): took 532 over from ANG
    "XDR": Currency("XDR", 960, None),
    "XOF": Currency("XOF", 952, 0),
    "XPD": Currency("XPD", 964, None),
    "XPF": Currency("XPF", 953, 0),
    "XPT": Currency("XPT", 962, None),
    "XSU": Currency("XSU", 994, None),
    "XTS": Currency("XTS", 963, None),
    "XUA": Currency("XUA", 965, None),
    "XXX": Currency("XXX", 999, None),
    "YER": Currency("YER", 886, 2),
    "ZAR": Currency("ZAR", 710, 2),
    "ZMW": Currency("ZMW", 967, 2),
    "ZWG": Currency("ZWG", 924, 2),  # amendment 177 (2024-06-25): replaced ZWL
}

BY_NUMERIC: Final[dict[int, Currency]] = {c.numeric: c for c in CURRENCIES.values()}


def alpha_of(numeric: int | None) -> str | None:
    """The alpha-3 code of an ISO 4217 numeric code, None if unknown (or None).

    >>> alpha_of(978), alpha_of(1)
    ('EUR', None)
    """
    found = None if numeric is None else BY_NUMERIC.get(numeric)
    return None if found is None else found.alpha


def is_known(alpha: str) -> bool:
    """True if ``alpha`` is a current ISO 4217 alpha-3 code, exactly as written (upper case)."""
    return alpha in CURRENCIES


def _lookup(alpha: str) -> Currency:
    try:
        return CURRENCIES[alpha]
    except KeyError:
        raise ValueError(f"unknown ISO 4217 currency code: {alpha!r}") from None


def exponent(alpha: str) -> int:
    """Number of minor-unit digits used for display; 0 where ISO 4217 says "N.A.".

    Raises ValueError for a code that is not in List One.
    """
    digits = _lookup(alpha).exponent
    return 0 if digits is None else digits


def format_minor(amount_minor: int, alpha: str) -> str:
    """Render an integer amount of minor units, e.g. ``format_minor(12550, "EUR") == "125.50 EUR"``.

    Negative amounts get a leading '-'. Only integer arithmetic is used, never floats.
    Raises ValueError for a code that is not in List One.
    """
    digits = exponent(alpha)
    sign = "-" if amount_minor < 0 else ""
    magnitude = abs(amount_minor)
    if digits == 0:
        return f"{sign}{magnitude} {alpha}"
    major, minor = divmod(magnitude, 10**digits)
    return f"{sign}{major}.{minor:0{digits}d} {alpha}"
