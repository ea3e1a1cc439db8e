//! Resource quantities (`100m`, `1.5`, `64Mi`, `1G`, `1e3`) with exact arithmetic.
//!
//! A manifest keeps its text in [`Quantity`]; [`Quantity::parse`] turns it into an
//! [`Amount`], an exact integer count of nano-units, so `100m + 0.9 == 1` holds
//! exactly and quantities written with different suffixes compare correctly.
//!
//! The grammar is Kubernetes' `resource.Quantity`: `<signedNumber><suffix>` where
//! the number is `[+-]?digits[.digits]` and the suffix is a decimal SI suffix
//! (`n u m "" k M G T P E`), a binary one (`Ki Mi Gi Ti Pi Ei`) or a decimal
//! exponent (`e3`, `E-2`). Two deliberate differences from Kubernetes:
//!
//! - the number needs at least one digit: Kubernetes reads `Mi`, `.` or `+` as
//!   zero, Flotilla refuses them;
//! - values whose magnitude exceeds 2^63-1 units are an error
//!   ([`QuantityError::OutOfRange`]) where Kubernetes silently caps them.
//!
//! Like Kubernetes, a non-zero value finer than one nano-unit is rounded away
//! from zero to the next nano-unit (`1e-12` reads as `1n`, `-0.1n` as `-1n`):
//! whoever asks for some of a resource gets some.
//!
//! ```
//! use flotilla_shared::quantity::{Amount, Quantity};
//!
//! let requested = Quantity("100m".into()).parse().unwrap();
//! let total = requested.checked_add("0.9".parse::<Amount>().unwrap()).unwrap();
//! assert_eq!(total, Amount::from_units(1));
//! assert_eq!("1.5".parse::<Amount>().unwrap().to_string(), "1500m");
//! assert_eq!("64Mi".parse::<Amount>().unwrap().to_quantity_binary().0, "64Mi");
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A quantity as written in a manifest. The text is kept so that a manifest
/// re-encodes as it was written; its exact value comes from parsing it.
/// Decoding accepts a JSON string or number (YAML `cpu: 1`), as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(Quantity(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
        }))
    }
}

impl Quantity {
    /// The exact value of the text, or why it is not a quantity.
    pub fn parse(&self) -> Result<Amount, QuantityError> {
        self.0.parse()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Amount> for Quantity {
    /// The canonical decimal form ([`Amount`]'s `Display`).
    fn from(amount: Amount) -> Self {
        amount.to_quantity()
    }
}

/// Kubernetes' regular expression for quantities, as quoted in its error message.
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Kubernetes' message for a malformed quantity (`resource.ErrFormatWrong`).
pub const FORMAT_WRONG_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Kubernetes' message for a suffix it does not know (`resource.ErrSuffix`).
pub const SUFFIX_MESSAGE: &str = "unable to parse quantity's suffix";

/// Why a text is not a quantity. Each variant but `Empty` carries the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity: {FORMAT_WRONG_MESSAGE}")]
    Empty,
    /// The number part or the shape of the suffix is malformed (`1.2.3`, `1 Gi`, `Mi`).
    #[error("invalid quantity {text:?}: {FORMAT_WRONG_MESSAGE}")]
    BadNumber { text: String },
    /// The suffix has the right shape but means nothing (`1Mm`, `1ei`, `1K`).
    #[error("invalid quantity {text:?}: {SUFFIX_MESSAGE} {suffix:?}")]
    UnknownSuffix { text: String, suffix: String },
    /// The magnitude exceeds what an [`Amount`] holds (`1e999`).
    #[error("quantity {text:?} is out of range: {OUT_OF_RANGE_MESSAGE}")]
    OutOfRange { text: String },
}

/// Why an out-of-range quantity is refused (Kubernetes caps instead, so has no wording).
pub const OUT_OF_RANGE_MESSAGE: &str =
    "must be between -9223372036854775808 and 9223372036854775807 units";

impl QuantityError {
    /// The message without the offending text, in Kubernetes' wording, for a
    /// field error that shows the value itself (`Invalid value: "1.2.3": <reason>`).
    pub fn reason(&self) -> &'static str {
        match self {
            QuantityError::Empty | QuantityError::BadNumber { .. } => FORMAT_WRONG_MESSAGE,
            QuantityError::UnknownSuffix { .. } => SUFFIX_MESSAGE,
            QuantityError::OutOfRange { .. } => OUT_OF_RANGE_MESSAGE,
        }
    }
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;
const MIN_NANOS: i128 = i64::MIN as i128 * NANOS_PER_UNIT;

/// The exact value of a quantity: an integer count of nano-units (10^-9).
///
/// Its range is `i64::MIN ..= i64::MAX` whole units, so every `i64` count of
/// units or millis converts without loss; arithmetic is checked against it.
/// `Display` prints Kubernetes' canonical decimal form: an integer followed by
/// the largest decimal SI suffix that keeps it exact (`1500m`, `1k`, `1200M`,
/// `0`), which [`FromStr`] reads back to the same value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i128);

impl Amount {
    /// The largest amount: 2^63-1 units.
    pub const MAX: Amount = Amount(MAX_NANOS);
    /// The smallest amount: -2^63 units.
    pub const MIN: Amount = Amount(MIN_NANOS);

    pub const fn zero() -> Self {
        Amount(0)
    }

    /// `units` whole units (cores, bytes, pods).
    pub const fn from_units(units: i64) -> Self {
        Amount(units as i128 * NANOS_PER_UNIT)
    }

    /// `millis` thousandths of a unit (millicores).
    pub const fn from_millis(millis: i64) -> Self {
        Amount(millis as i128 * 1_000_000)
    }

    /// `nanos` nano-units, or `None` outside [`Amount::MIN`]`..=`[`Amount::MAX`].
    pub const fn from_nanos(nanos: i128) -> Option<Self> {
        if nanos < MIN_NANOS || nanos > MAX_NANOS {
            None
        } else {
            Some(Amount(nanos))
        }
    }

    /// The exact value in nano-units.
    pub const fn nanos(self) -> i128 {
        self.0
    }

    /// The value in thousandths, rounded away from zero like Kubernetes'
    /// `MilliValue` (`1n` → 1, `-1n` → -1).
    pub const fn millis_ceil(self) -> i128 {
        div_away_from_zero(self.0, 1_000_000)
    }

    /// The value in whole units, rounded away from zero like Kubernetes'
    /// `Value` on a quantity with a fraction (`100m` → 1, `-100m` → -1).
    pub const fn units_ceil(self) -> i64 {
        // In range: |nanos| ≤ 2^63 units, and rounding away from zero cannot pass a whole unit bound.
        div_away_from_zero(self.0, NANOS_PER_UNIT) as i64
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// `self + other`, or `None` when the sum leaves the range.
    pub const fn checked_add(self, other: Amount) -> Option<Amount> {
        match self.0.checked_add(other.0) {
            Some(nanos) => Amount::from_nanos(nanos),
            None => None,
        }
    }

    /// `self - other`, or `None` when the difference leaves the range.
    pub const fn checked_sub(self, other: Amount) -> Option<Amount> {
        match self.0.checked_sub(other.0) {
            Some(nanos) => Amount::from_nanos(nanos),
            None => None,
        }
    }

    /// `self × factor` (a replica count, say), or `None` when it leaves the range.
    pub const fn checked_mul(self, factor: i64) -> Option<Amount> {
        match self.0.checked_mul(factor as i128) {
            Some(nanos) => Amount::from_nanos(nanos),
            None => None,
        }
    }

    /// `-self`, or `None` for [`Amount::MIN`].
    pub const fn checked_neg(self) -> Option<Amount> {
        Amount::from_nanos(-self.0)
    }

    /// The sum of `amounts`, or `None` as soon as a partial sum leaves the range.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(amounts: I) -> Option<Amount> {
        amounts
            .into_iter()
            .try_fold(Amount::zero(), Amount::checked_add)
    }

    /// The canonical decimal text, as a [`Quantity`] (`1500m`, `2G`).
    pub fn to_quantity(self) -> Quantity {
        Quantity(self.to_string())
    }

    /// The canonical text for a memory-like value, as Kubernetes prints a
    /// quantity in its binary format: a whole number of units with the largest
    /// binary suffix that keeps it exact (`64Mi`, `1536Ki`, `1500`). Values
    /// below 1024 units in magnitude or with a fraction use the decimal form
    /// instead (`1k`, `500m`), as Kubernetes does to avoid rounding.
    pub fn to_quantity_binary(self) -> Quantity {
        if self.0 % NANOS_PER_UNIT != 0 || self.0.abs() < 1024 * NANOS_PER_UNIT {
            return self.to_quantity();
        }
        let mut units = self.0 / NANOS_PER_UNIT;
        let mut suffix = "";
        for next in BINARY_SUFFIXES {
            if units % 1024 != 0 {
                break;
            }
            units /= 1024;
            suffix = next;
        }
        Quantity(format!("{units}{suffix}"))
    }
}

const BINARY_SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// Decimal SI suffixes from the largest, with the power of ten of one of them in nano-units.
const DECIMAL_SUFFIXES: [(&str, u32); 10] = [
    ("E", 27),
    ("P", 24),
    ("T", 21),
    ("G", 18),
    ("M", 15),
    ("k", 12),
    ("", 9),
    ("m", 6),
    ("u", 3),
    ("n", 0),
];

const fn div_away_from_zero(value: i128, divisor: i128) -> i128 {
    let quotient = value / divisor;
    if value % divisor == 0 {
        quotient
    } else if value > 0 {
        quotient + 1
    } else {
        quotient - 1
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        let magnitude = self.0.unsigned_abs();
        let sign = if self.0 < 0 { "-" } else { "" };
        for (suffix, power) in DECIMAL_SUFFIXES {
            let scale = 10u128.pow(power);
            if magnitude.is_multiple_of(scale) {
                return write!(f, "{sign}{}{suffix}", magnitude / scale);
            }
        }
        unreachable!("every magnitude is a multiple of 10^0")
    }
}

impl FromStr for Amount {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_amount(text)
    }
}

/// The number and suffix of a quantity's text, split as Kubernetes' scanner does.
struct Parts<'a> {
    negative: bool,
    integer: &'a str,
    fraction: &'a str,
    suffix: &'a str,
}

fn split(text: &str) -> Result<Parts<'_>, QuantityError> {
    let bad = || QuantityError::BadNumber {
        text: text.to_owned(),
    };
    let bytes = text.as_bytes();
    let digits_from = |mut pos: usize| {
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        pos
    };

    let (negative, start) = match bytes.first() {
        None => return Err(QuantityError::Empty),
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        Some(_) => (false, 0),
    };
    let mut pos = digits_from(start);
    let integer = &text[start..pos];
    let mut fraction = "";
    if bytes.get(pos) == Some(&b'.') {
        let end = digits_from(pos + 1);
        fraction = &text[pos + 1..end];
        pos = end;
    }
    if integer.is_empty() && fraction.is_empty() {
        return Err(bad());
    }

    let suffix_start = pos;
    while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if matches!(bytes.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    if digits_from(pos) != bytes.len() {
        return Err(bad());
    }
    Ok(Parts {
        negative,
        integer,
        fraction,
        suffix: &text[suffix_start..],
    })
}

/// What a suffix multiplies by: a power of ten and a power of two.
enum Scale {
    Exponent {
        ten: i64,
        two: u32,
    },
    /// A decimal exponent too large for an `i64` (`e99999999999999999999`).
    Overflow,
}

fn interpret(suffix: &str) -> Option<Scale> {
    let decimal = |ten| Some(Scale::Exponent { ten, two: 0 });
    let binary = |two| Some(Scale::Exponent { ten: 0, two });
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            if let Ok(ten) = exponent.parse::<i64>() {
                return decimal(ten);
            }
            let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            (!unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()))
                .then_some(Scale::Overflow)
        }
    }
}

fn parse_amount(text: &str) -> Result<Amount, QuantityError> {
    let parts = split(text)?;
    let out_of_range = || QuantityError::OutOfRange {
        text: text.to_owned(),
    };
    let scale = interpret(parts.suffix).ok_or_else(|| QuantityError::UnknownSuffix {
        text: text.to_owned(),
        suffix: parts.suffix.to_owned(),
    })?;

    // value = digits × 10^power × 2^two nano-units, digits without leading or trailing zeros.
    let all_digits = parts.integer.bytes().chain(parts.fraction.bytes());
    let digits: Vec<u8> = all_digits
        .skip_while(|&b| b == b'0')
        .map(|b| b - b'0')
        .collect();
    let trailing_zeros = digits.iter().rev().take_while(|&&d| d == 0).count();
    let digits = &digits[..digits.len() - trailing_zeros];
    if digits.is_empty() {
        return Ok(Amount::zero());
    }
    let (ten, two) = match scale {
        Scale::Exponent { ten, two } => (ten, two),
        Scale::Overflow => return Err(out_of_range()),
    };
    let power = i128::from(ten) + 9 - parts.fraction.len() as i128 + trailing_zeros as i128;
    // The leading digit alone is worth 10^(len-1+power) ≥ 10^29 nano-units: beyond any amount.
    if digits.len() as i128 - 1 + power >= 29 {
        return Err(out_of_range());
    }
    let binary = 1i128 << two;
    let to_int = |digits: &[u8]| digits.iter().fold(0i128, |n, &d| n * 10 + i128::from(d));

    let magnitude = if power >= 0 {
        // At most 29 digits, and power ≤ 28: both fit an i128.
        to_int(digits)
            .checked_mul(10i128.pow(power as u32))
            .and_then(|n| n.checked_mul(binary))
    } else {
        let below = -power; // digits of the value below one nano-unit
        let split_at = (digits.len() as i128 - below).max(0) as usize;
        let (whole, fraction) = digits.split_at(split_at);
        let leading_fraction_zeros = below - fraction.len() as i128;
        let (carry, inexact) = fraction_times(fraction, leading_fraction_zeros, binary);
        to_int(whole)
            .checked_mul(binary)
            .and_then(|n| n.checked_add(carry + i128::from(inexact)))
    };
    let limit = if parts.negative {
        -MIN_NANOS
    } else {
        MAX_NANOS
    };
    match magnitude {
        Some(m) if m <= limit => Ok(Amount(if parts.negative { -m } else { m })),
        _ => Err(out_of_range()),
    }
}

/// `0.<zeros × 0><fraction> × factor` as its whole part and whether a fraction remains,
/// computed digit by digit from the least significant so no digit count overflows.
fn fraction_times(fraction: &[u8], zeros: i128, factor: i128) -> (i128, bool) {
    let mut carry = 0i128;
    let mut inexact = false;
    for &digit in fraction.iter().rev() {
        let product = i128::from(digit) * factor + carry;
        inexact |= product % 10 != 0;
        carry = product / 10;
    }
    let mut zeros = zeros;
    while carry != 0 && zeros > 0 {
        inexact |= carry % 10 != 0;
        carry /= 10;
        zeros -= 1;
    }
    (carry, inexact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UNIT: i128 = NANOS_PER_UNIT;

    fn amount(text: &str) -> Amount {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn parses_every_suffix_and_form_to_its_exact_value() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("1n", 1),
            ("1u", 1_000),
            ("1m", 1_000_000),
            ("1", UNIT),
            ("1k", 1_000 * UNIT),
            ("1M", 1_000_000 * UNIT),
            ("1G", 1_000_000_000 * UNIT),
            ("1T", 1_000_000_000_000 * UNIT),
            ("1P", 1_000_000_000_000_000 * UNIT),
            ("1E", 1_000_000_000_000_000_000 * UNIT),
            ("1Ki", 1024 * UNIT),
            ("1Mi", (1 << 20) * UNIT),
            ("1Gi", (1 << 30) * UNIT),
            ("1Ti", (1 << 40) * UNIT),
            ("1Pi", (1 << 50) * UNIT),
            ("1Ei", (1 << 60) * UNIT),
            ("100m", 100_000_000),
            ("1.5", 1_500_000_000),
            ("64Mi", 64 * (1 << 20) * UNIT),
            ("1e3", 1_000 * UNIT),
            ("1E3", 1_000 * UNIT),
            ("1e+3", 1_000 * UNIT),
            ("1E-2", 10_000_000),
            ("1e0", UNIT),
            ("0.1", 100_000_000),
            ("-1", -UNIT),
            ("+1", UNIT),
            (".5", 500_000_000),
            ("5.", 5 * UNIT),
            ("1.G", 1_000_000_000 * UNIT),
            ("0.5Ki", 512 * UNIT),
            ("1.5Gi", 3 * (1 << 29) * UNIT),
            ("007", 7 * UNIT),
            ("-0", 0),
            ("0.000Mi", 0),
            ("0e999", 0),
            ("1500000000n", 1_500_000_000),
            ("9223372036854775807", MAX_NANOS),
            ("-9223372036854775808", MIN_NANOS),
            ("-8Ei", MIN_NANOS),
            ("7Ei", 7 * (1 << 60) * UNIT),
        ];
        for &(text, nanos) in cases {
            assert_eq!(amount(text).nanos(), nanos, "{text}");
        }
    }

    #[test]
    fn rounds_fractions_of_a_nano_unit_away_from_zero() {
        let cases: &[(&str, i128)] = &[
            ("0.1n", 1),
            ("1.1n", 2),
            ("-0.1n", -1),
            ("1e-12", 1),
            ("1e-999999", 1),
            ("-1e-9223372036854775808", -1),
            ("1.0000000000000000000000000000000000000001", UNIT + 1),
            ("0.001Ki", 1_024_000_000),
            ("0.000000001Ki", 1024),
            ("0.0000000000001Ki", 1),
            ("0.000000000001Ki", 2), // 1.024n
        ];
        for &(text, nanos) in cases {
            assert_eq!(amount(text).nanos(), nanos, "{text}");
        }
    }

    #[test]
    fn refuses_malformed_quantities_with_kubernetes_reasons() {
        let bad = |text: &str| QuantityError::BadNumber { text: text.into() };
        let suffix = |text: &str, suffix: &str| QuantityError::UnknownSuffix {
            text: text.into(),
            suffix: suffix.into(),
        };
        let range = |text: &str| QuantityError::OutOfRange { text: text.into() };
        let cases = [
            ("", QuantityError::Empty),
            ("1.2.3", bad("1.2.3")),
            ("Mi", bad("Mi")),
            (".", bad(".")),
            ("+", bad("+")),
            ("1Qi", bad("1Qi")),
            ("1 Gi", bad("1 Gi")),
            (" 1", bad(" 1")),
            ("1 ", bad("1 ")),
            ("1e1.0", bad("1e1.0")),
            ("1.0i+1x", bad("1.0i+1x")),
            ("--1", bad("--1")),
            ("1K", suffix("1K", "K")),
            ("1mi", suffix("1mi", "mi")),
            ("1Mm", suffix("1Mm", "Mm")),
            ("1ei", suffix("1ei", "ei")),
            ("1e", suffix("1e", "e")),
            ("1e-", suffix("1e-", "e-")),
            ("1-3", suffix("1-3", "-3")),
            ("1Mi3", suffix("1Mi3", "Mi3")),
            ("1e999", range("1e999")),
            ("1e99999999999999999999", range("1e99999999999999999999")),
            ("9223372036854775808", range("9223372036854775808")),
            ("-9223372036854775809", range("-9223372036854775809")),
            ("8Ei", range("8Ei")),
            (
                "100000000000000000000000000000000000000000",
                range("100000000000000000000000000000000000000000"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Amount>(), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn error_messages_carry_the_text_and_kubernetes_wording() {
        let err = "1.2.3".parse::<Amount>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid quantity \"1.2.3\": quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert_eq!(
            err.reason(),
            format!("quantities must match the regular expression '{QUANTITY_REGEX}'")
        );
        let err = "1Mm".parse::<Amount>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid quantity \"1Mm\": unable to parse quantity's suffix \"Mm\""
        );
        assert_eq!(err.reason(), "unable to parse quantity's suffix");
        assert!(
            "1e999"
                .parse::<Amount>()
                .unwrap_err()
                .to_string()
                .contains("\"1e999\"")
        );
    }

    #[test]
    fn ten_hundred_millis_sum_to_exactly_one() {
        let tenth = amount("100m");
        let sum = Amount::checked_sum(std::iter::repeat_n(tenth, 10)).unwrap();
        assert_eq!(sum, amount("1"));
        assert_eq!(
            amount("100m").checked_add(amount("0.9")),
            Some(Amount::from_units(1))
        );
        assert_eq!(tenth.checked_mul(10), Some(Amount::from_units(1)));
        assert_eq!(amount("1").checked_sub(amount("0.1")), Some(amount("900m")));
    }

    #[test]
    fn arithmetic_refuses_to_leave_the_range() {
        assert_eq!(Amount::MAX.checked_add(amount("1n")), None);
        assert_eq!(Amount::MIN.checked_sub(amount("1n")), None);
        assert_eq!(Amount::MAX.checked_mul(2), None);
        assert_eq!(Amount::MIN.checked_mul(-1), None);
        assert_eq!(Amount::MIN.checked_neg(), None);
        assert_eq!(
            Amount::MAX
                .checked_neg()
                .and_then(|a| a.checked_sub(Amount::from_nanos(UNIT).unwrap())),
            Some(Amount::MIN)
        );
        assert_eq!(Amount::from_nanos(MAX_NANOS + 1), None);
        assert_eq!(Amount::from_units(i64::MIN), Amount::MIN);
        assert_eq!(Amount::from_units(i64::MAX), Amount::MAX);
    }

    #[test]
    fn orders_values_across_suffixes() {
        let ascending = [
            "-1Gi", "-1G", "-1", "0", "1n", "1u", "1m", "100m", "0.5", "1", "1k", "1Ki", "1M",
            "1Mi", "1G", "1Gi", "1T", "1Ti", "1P", "1Pi", "1E", "1Ei",
        ];
        for pair in ascending.windows(2) {
            assert!(
                amount(pair[0]) < amount(pair[1]),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert!(amount("1Gi") > amount("1G"));
        assert_eq!(amount("1000m"), amount("1"));
        assert_eq!(amount("1024"), amount("1Ki"));
        assert_eq!(amount("1e3"), amount("1k"));
    }

    #[test]
    fn converts_to_millis_and_units_rounding_away_from_zero() {
        let cases: &[(&str, i128, i64)] = &[
            ("0", 0, 0),
            ("1n", 1, 1),
            ("-1n", -1, -1),
            ("100m", 100, 1),
            ("1.5", 1500, 2),
            ("-1.5", -1500, -2),
            ("2", 2000, 2),
            ("1Ki", 1_024_000, 1024),
            ("9223372036854775807", i64::MAX as i128 * 1000, i64::MAX),
            ("-9223372036854775808", i64::MIN as i128 * 1000, i64::MIN),
        ];
        for &(text, millis, units) in cases {
            assert_eq!(amount(text).millis_ceil(), millis, "{text} millis");
            assert_eq!(amount(text).units_ceil(), units, "{text} units");
        }
        assert_eq!(Amount::from_millis(1500), amount("1.5"));
        assert_eq!(Amount::from_units(3), amount("3"));
        assert_eq!(Amount::zero(), amount("0"));
    }

    #[test]
    fn displays_the_canonical_decimal_form() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("1.5", "1500m"),
            ("100m", "100m"),
            ("0.1", "100m"),
            ("1000", "1k"),
            ("1100", "1100"),
            ("1200000", "1200k"),
            ("1e3", "1k"),
            ("1G", "1G"),
            ("1Gi", "1073741824"),
            ("1Ki", "1024"),
            ("-2.5k", "-2500"),
            ("1.5n", "2n"),
            ("1E", "1E"),
            ("9223372036854775807", "9223372036854775807"),
            ("-9223372036854775808", "-9223372036854775808"),
        ];
        for (text, canonical) in cases {
            assert_eq!(amount(text).to_string(), canonical, "{text}");
            assert_eq!(
                amount(text).to_quantity(),
                Quantity(canonical.into()),
                "{text}"
            );
        }
    }

    #[test]
    fn displays_memory_with_binary_suffixes_when_exact() {
        let cases = [
            ("0", "0"),
            ("64Mi", "64Mi"),
            ("1Gi", "1Gi"),
            ("1536Ki", "1536Ki"),
            ("1.5Mi", "1536Ki"),
            ("1024", "1Ki"),
            ("1023", "1023"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1G", "1000000000"),
            ("100m", "100m"),
            ("2048.5", "2048500m"),
            ("-2Gi", "-2Gi"),
            ("-8Ei", "-8Ei"),
            ("1Ei", "1Ei"),
        ];
        for (text, canonical) in cases {
            let shown = amount(text).to_quantity_binary();
            assert_eq!(shown.0, canonical, "{text}");
            assert_eq!(shown.parse(), Ok(amount(text)), "{text}");
        }
    }

    #[test]
    fn quantity_parses_its_manifest_text() {
        let q: Quantity = serde_json::from_str("1").unwrap();
        assert_eq!(q.parse(), Ok(Amount::from_units(1)));
        let q: Quantity = serde_json::from_str("0.5").unwrap();
        assert_eq!(q.parse(), Ok(Amount::from_millis(500)));
        let q: Quantity = serde_json::from_str("\"250m\"").unwrap();
        assert_eq!(q.parse(), Ok(Amount::from_millis(250)));
        assert_eq!(Quantity::from(Amount::from_millis(250)).to_string(), "250m");
    }

    fn any_amount() -> impl Strategy<Value = Amount> {
        prop_oneof![
            (MIN_NANOS..=MAX_NANOS).prop_map(Amount),
            (any::<i64>(), 0u32..=9).prop_map(|(n, p)| Amount(
                (i128::from(n) * 10i128.pow(p)).clamp(MIN_NANOS, MAX_NANOS)
            )),
            (-1_000_000i64..=1_000_000, 0u32..=5).prop_map(|(n, k)| Amount::from_units(n)
                .checked_mul(1 << (10 * k))
                .unwrap_or(Amount::MAX)),
        ]
    }

    proptest! {
        #[test]
        fn canonical_text_parses_back_to_the_same_amount(x in any_amount()) {
            prop_assert_eq!(x.to_string().parse::<Amount>(), Ok(x));
            prop_assert_eq!(x.to_quantity_binary().parse(), Ok(x));
        }

        #[test]
        fn addition_is_exact_and_checked(a in any_amount(), b in any_amount()) {
            let exact = a.nanos() + b.nanos();
            prop_assert_eq!(a.checked_add(b).map(Amount::nanos), (MIN_NANOS..=MAX_NANOS).contains(&exact).then_some(exact));
            if let Some(sum) = a.checked_add(b) {
                prop_assert_eq!(sum.checked_sub(b), Some(a));
            }
        }

        #[test]
        fn decimal_text_with_any_suffix_parses_exactly(units in -1_000_000i64..=1_000_000, frac in 0u32..1000) {
            let text = format!("{units}.{frac:03}");
            let sign = if text.starts_with('-') { -1 } else { 1 };
            let nanos = i128::from(units) * UNIT + sign * i128::from(frac) * 1_000_000;
            prop_assert_eq!(amount(&text).nanos(), nanos);
            prop_assert_eq!(amount(&format!("{text}k")).nanos(), nanos * 1000);
            prop_assert_eq!(amount(&format!("{text}e-3")), amount(&format!("{text}m")));
        }
    }
}
