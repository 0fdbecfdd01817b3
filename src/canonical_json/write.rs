//! The writer: [`Value`] to exactly the text `JSON.stringify` prints (rules in the
//! [module docs](super)).

use super::Value;

/// If `key` is an ECMAScript array index (a canonical decimal integer in
/// `0..=2^32-2`), returns it. Such keys are enumerated first, ascending.
pub(super) fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes.len() == 1 || bytes.first() != Some(&b'0'));
    if !canonical {
        return None;
    }
    // Fails for anything above u32::MAX; u32::MAX itself is not an index.
    key.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

impl Value {
    /// Appends the compact `JSON.stringify(value)` text of `self` to `out`.
    ///
    /// A hand-built object with duplicate keys (which [`parse`] never
    /// returns) is written with every member, in the usual order.
    pub fn write_canonical(&self, out: &mut String) {
        self.write(out, None);
    }

    /// The compact `JSON.stringify(value)` text of `self`.
    pub fn to_canonical_string(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    /// The text of `JSON.stringify(value, null, 2)`: the same members in the same
    /// order, one per line, indented by two spaces per level, `": "` after keys, and
    /// empty arrays and objects as `[]` and `{}`. For people reading a body.
    pub fn to_pretty_string(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        out
    }

    /// Writes `self`; `level` is `None` for compact text, else the indentation level.
    fn write(&self, out: &mut String, level: Option<usize>) {
        let inner = level.map(|l| l + 1);
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(n) if n.is_finite() => write_js_number(*n, out),
            Value::Number(_) => out.push_str("null"),
            Value::String(s) => write_js_string(s, out),
            Value::Array(items) if items.is_empty() => out.push_str("[]"),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    new_line(out, inner);
                    item.write(out, inner);
                }
                new_line(out, level);
                out.push(']');
            }
            Value::Object(members) if members.is_empty() => out.push_str("{}"),
            Value::Object(members) => {
                let mut indexed: Vec<(u32, usize)> = members
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (key, _))| array_index(key).map(|n| (n, i)))
                    .collect();
                out.push('{');
                if indexed.is_empty() {
                    write_members(members.iter(), out, inner);
                } else {
                    indexed.sort_unstable();
                    let index_keys = indexed.iter().filter_map(|&(_, i)| members.get(i));
                    let other_keys = members.iter().filter(|(key, _)| array_index(key).is_none());
                    write_members(index_keys.chain(other_keys), out, inner);
                }
                new_line(out, level);
                out.push('}');
            }
        }
    }

    /// The members of an object, in the publisher's order.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Looks up `key` in an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The JSON type name, for error messages: "null", "boolean", "number",
    /// "string", "array" or "object".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

fn write_members<'a>(
    members: impl Iterator<Item = &'a (String, Value)>,
    out: &mut String,
    level: Option<usize>,
) {
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        new_line(out, level);
        write_js_string(key, out);
        out.push(':');
        if level.is_some() {
            out.push(' ');
        }
        value.write(out, level);
    }
}

/// In pretty text, a line break and the indentation of `level`; nothing in compact text.
fn new_line(out: &mut String, level: Option<usize>) {
    if let Some(level) = level {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', 2 * level));
    }
}

/// Appends ECMAScript `Number::toString(n)` (what `String(n)` gives) to `out`.
///
/// Meant for finite `n`; for the record, NaN and the infinities are written
/// as `NaN`, `Infinity` and `-Infinity` (`JSON.stringify` would print `null`
/// instead, which [`Value::write_canonical`] does).
pub fn write_js_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("NaN");
        return;
    }
    if n == 0.0 {
        // Both +0 and -0.
        out.push('0');
        return;
    }
    if n.is_infinite() {
        out.push_str(if n < 0.0 { "-Infinity" } else { "Infinity" });
        return;
    }
    if n < 0.0 {
        out.push('-');
    }
    let x = n.abs();
    // Rust's `{:e}` prints the shortest digit string that round-trips (and,
    // among those, the one closest to `x`), e.g. `1.2345e-7` or `5e-324`.
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // In the spec's terms: value = s × 10^(point - k), s = digits.
    let k = digits.len() as i32;
    let point = exponent.parse::<i32>().unwrap_or(0) + 1;
    if let Some(even) = even_tie_digits(x, &digits, point - k) {
        digits = even;
    }
    if k <= point && point <= 21 {
        out.push_str(&digits);
        push_zeros(out, point - k);
    } else if 0 < point && point <= 21 {
        let (whole, fraction) = digits.split_at(point as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        push_zeros(out, -point);
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = point - 1;
        out.push_str(if e < 0 { "e-" } else { "e+" });
        out.push_str(&e.unsigned_abs().to_string());
    }
}

/// ECMAScript breaks a tie between two equally close shortest digit strings
/// towards the even one (Number::toString, note 2; V8 does so); Rust's `{:e}`
/// breaks it upwards. E.g. 771558860699787.25 prints as `771558860699787.2` in
/// JavaScript but `7.715588606997873e14` in Rust. Given Rust's digits `s` for
/// `x = s × 10^exp10` (approximately), returns the even neighbour's digits if
/// `x` lies exactly halfway between `s` and that neighbour and the neighbour
/// also round-trips to `x`.
fn even_tie_digits(x: f64, digits: &str, exp10: i32) -> Option<String> {
    let s: u64 = digits.parse().ok()?;
    if s.is_multiple_of(2) {
        return None;
    }
    let width = digits.len();
    [s.checked_sub(1)?, s + 1]
        .into_iter()
        .filter(|&neighbour| is_exact_midpoint(x, s + neighbour, exp10))
        .map(|neighbour| neighbour.to_string())
        .find(|candidate| {
            candidate.len() == width
                && format!("{candidate}e{exp10}").parse::<f64>().ok() == Some(x)
        })
}

/// Whether `x` (positive, finite) is exactly `(odd / 2) × 10^exp10`, i.e.
/// `2x = odd × 2^exp10 × 5^exp10`, compared via the binary representation
/// `x = mantissa × 2^exp2` without big integers: both sides' powers of two and
/// odd parts must agree.
fn is_exact_midpoint(x: f64, odd: u64, exp10: i32) -> bool {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    if mantissa == 0 || odd.is_multiple_of(2) {
        return false;
    }
    let zeros = mantissa.trailing_zeros();
    let mantissa_odd = u128::from(mantissa >> zeros);
    // 2x = mantissa_odd × 2^twos
    let twos = exp2 + 1 + zeros as i32;
    let pow5 = |e: i32| 5u128.checked_pow(e.unsigned_abs());
    if exp10 >= 0 {
        // mantissa_odd × 2^twos = odd × 5^exp10 × 2^exp10
        twos == exp10
            && pow5(exp10).and_then(|p| p.checked_mul(u128::from(odd))) == Some(mantissa_odd)
    } else {
        // mantissa_odd × 5^-exp10 × 2^(twos - exp10) = odd
        twos == exp10
            && pow5(exp10).and_then(|p| p.checked_mul(mantissa_odd)) == Some(u128::from(odd))
    }
}

fn push_zeros(out: &mut String, count: i32) {
    for _ in 0..count {
        out.push('0');
    }
}

/// Appends `s` quoted exactly as `JSON.stringify(s)` would quote it.
pub fn write_js_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0C => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1F => "",
            _ => continue,
        };
        // `b` is ASCII, so `start..i` lies on character boundaries.
        out.push_str(&s[start..i]);
        start = i + 1;
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        } else {
            out.push_str(short);
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}
