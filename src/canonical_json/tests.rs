//! Unit tests of the canonical JSON parser and writer.

use super::write::array_index;
use super::*;

fn canon(input: &str) -> String {
    match parse(input.as_bytes()) {
        Ok(value) => value.to_canonical_string(),
        Err(e) => panic!("{input:?} was rejected: {e}"),
    }
}

fn err(input: &[u8]) -> ParseError {
    match parse(input) {
        Ok(value) => panic!("{input:?} was accepted as {value:?}"),
        Err(e) => e,
    }
}

/// Asserts the full Display text (and thereby the offset in it).
fn assert_err(input: &str, message: &str) {
    assert_eq!(
        err(input.as_bytes()).to_string(),
        message,
        "input {input:?}"
    );
}

fn js_number(n: f64) -> String {
    let mut out = String::new();
    write_js_number(n, &mut out);
    out
}

fn js_string(s: &str) -> String {
    let mut out = String::new();
    write_js_string(s, &mut out);
    out
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

// ---- parsing: accepted input ----------------------------------------

#[test]
fn parses_every_kind_of_value() {
    let value =
        parse(br#"{"n":null,"t":true,"f":false,"x":-1.5,"s":"hi","a":[1,{}],"o":{"k":[]}}"#)
            .expect("valid");
    let expected = Value::Object(vec![
        ("n".into(), Value::Null),
        ("t".into(), Value::Bool(true)),
        ("f".into(), Value::Bool(false)),
        ("x".into(), Value::Number(-1.5)),
        ("s".into(), Value::String("hi".into())),
        (
            "a".into(),
            Value::Array(vec![Value::Number(1.0), Value::Object(vec![])]),
        ),
        (
            "o".into(),
            Value::Object(vec![("k".into(), Value::Array(vec![]))]),
        ),
    ]);
    assert_eq!(value, expected);
}

#[test]
fn scalars_are_valid_top_level_values() {
    assert_eq!(parse(b"null"), Ok(Value::Null));
    assert_eq!(parse(b"true"), Ok(Value::Bool(true)));
    assert_eq!(parse(b"false"), Ok(Value::Bool(false)));
    assert_eq!(parse(b"0"), Ok(Value::Number(0.0)));
    assert_eq!(parse(br#""x""#), Ok(Value::String("x".into())));
}

#[test]
fn surrounding_json_whitespace_is_allowed() {
    assert_eq!(
        canon(" \t\r\n{ \"a\" :\t[ 1 ,\n2 ] } \r\n\t"),
        r#"{"a":[1,2]}"#
    );
    assert_eq!(canon("\n[]\n"), "[]");
}

#[test]
fn other_whitespace_is_rejected() {
    assert_err("\u{a0}{}", "unexpected character '\\u{a0}' at byte 0");
    assert_err(
        "{}\u{c}",
        "trailing characters after the JSON value at byte 2",
    );
    assert_err("[1,\u{b}2]", "unexpected character '\\u{b}' at byte 3");
    assert_err("\u{feff}{}", "unexpected character '\\u{feff}' at byte 0");
}

#[test]
fn object_members_keep_publisher_order() {
    let value = parse(br#"{"b":1,"a":2,"c":3}"#).expect("valid");
    let keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["b", "a", "c"]);
}

#[test]
fn string_escapes() {
    let value = parse(br#""\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u00E9 \uFFFF""#).expect("valid");
    assert_eq!(
        value.as_str(),
        Some("\" \\ / \u{8} \u{c} \n \r \t A \u{e9} \u{e9} \u{ffff}")
    );
}

#[test]
fn surrogate_pairs_combine_in_any_case() {
    for input in [
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00""#,
        r#""\uD83d\uDe00""#,
    ] {
        assert_eq!(parse(input.as_bytes()), Ok(Value::String("😀".into())));
    }
    assert_eq!(
        parse(br#""\ud800\udc00\udbff\udfff""#),
        Ok(Value::String("\u{10000}\u{10ffff}".into()))
    );
}

#[test]
fn literal_non_ascii_is_kept() {
    let text = "{\"k\u{e9}\":\"\u{65e5}\u{672c} \u{1f600} \u{2028}\u{2029}\u{7f}\"}";
    assert_eq!(canon(text), text);
}

#[test]
fn escaped_keys_are_unescaped() {
    let value = parse(br#"{"k\u00e9y":1}"#).expect("valid");
    assert_eq!(value.get("k\u{e9}y"), Some(&Value::Number(1.0)));
}

// ---- parsing: numbers -----------------------------------------------

#[test]
fn number_grammar_accepts_rfc_forms() {
    for (input, expected) in [
        ("0", 0.0),
        ("-0", -0.0),
        ("7", 7.0),
        ("-12", -12.0),
        ("0.5", 0.5),
        ("-0.0", -0.0),
        ("1e2", 100.0),
        ("1E2", 100.0),
        ("1e+2", 100.0),
        ("1e-2", 0.01),
        ("2.5E+3", 2500.0),
        ("0e0", 0.0),
        ("10e-1", 1.0),
    ] {
        assert_eq!(
            parse(input.as_bytes()),
            Ok(Value::Number(expected)),
            "{input}"
        );
    }
    let Ok(Value::Number(negative_zero)) = parse(b"-0") else {
        panic!("-0 must parse");
    };
    assert!(negative_zero.is_sign_negative());
}

#[test]
fn numbers_are_correctly_rounded() {
    assert_eq!(parse(b"0.1"), Ok(Value::Number(0.1)));
    assert_eq!(
        parse(b"3.14159265358979323846264338327950288"),
        Ok(Value::Number(std::f64::consts::PI))
    );
    assert_eq!(parse(b"2.4703282292062328e-324"), Ok(Value::Number(5e-324)));
    assert_eq!(
        parse(b"1.7976931348623157e308"),
        Ok(Value::Number(f64::MAX))
    );
}

#[test]
fn number_grammar_rejects_non_rfc_forms() {
    assert_err("01", "leading zeros are not allowed in numbers at byte 0");
    assert_err(
        "[-01]",
        "leading zeros are not allowed in numbers at byte 1",
    );
    assert_err("00", "leading zeros are not allowed in numbers at byte 0");
    assert_err("+1", "unexpected character '+' at byte 0");
    assert_err(".5", "unexpected character '.' at byte 0");
    assert_err("[1.]", "expected a digit after the decimal point at byte 3");
    assert_err(
        "[1.e5]",
        "expected a digit after the decimal point at byte 3",
    );
    assert_err("[1e]", "expected a digit in the exponent at byte 3");
    assert_err("[1e+]", "expected a digit in the exponent at byte 4");
    assert_err("[-]", "expected a digit after '-' at byte 2");
    assert_err("[-a]", "expected a digit after '-' at byte 2");
    assert_err("[--1]", "expected a digit after '-' at byte 2");
    assert_err("0x10", "trailing characters after the JSON value at byte 1");
    assert_err(
        "1.5.3",
        "trailing characters after the JSON value at byte 3",
    );
    assert_err("[1 2]", "unexpected character '2' at byte 3");
    assert_err("1.", "unexpected end of input");
    assert_err("-", "unexpected end of input");
    assert_err("1e", "unexpected end of input");
}

#[test]
fn nan_and_infinity_are_rejected() {
    assert_err("NaN", "unexpected character 'N' at byte 0");
    assert_err("[Infinity]", "unexpected character 'I' at byte 1");
    assert_err("-Infinity", "expected a digit after '-' at byte 1");
}

#[test]
fn numbers_out_of_double_range_are_rejected() {
    assert_err(
        r#"{"big": 1e400}"#,
        "number 1e400 is out of range for a double at byte 8",
    );
    assert_err(
        "-1e400",
        "number -1e400 is out of range for a double at byte 0",
    );
    assert_err(
        "1.8e308",
        "number 1.8e308 is out of range for a double at byte 0",
    );
    // Underflow to zero is fine.
    assert_eq!(parse(b"1e-400"), Ok(Value::Number(0.0)));
    assert_eq!(parse(b"-1e-400"), Ok(Value::Number(-0.0)));
}

#[test]
fn integers_beyond_two_to_the_53_are_rejected() {
    assert_err(
        r#"{"id":9007199254740993}"#,
        "integer 9007199254740993 is beyond ±2^53 and would lose precision; \
         send it as a string (at byte 6)",
    );
    assert_err(
        "-9007199254740993",
        "integer -9007199254740993 is beyond ±2^53 and would lose precision; \
         send it as a string (at byte 0)",
    );
    assert!(parse(b"12345678901234567890").is_err());
    assert!(parse(b"10000000000000000").is_err());
    assert!(parse(b"9007199254740999").is_err());
    assert_eq!(
        parse(b"9007199254740992"),
        Ok(Value::Number(9_007_199_254_740_992.0))
    );
    assert_eq!(
        parse(b"-9007199254740992"),
        Ok(Value::Number(-9_007_199_254_740_992.0))
    );
    assert!(parse(b"9007199254740991").is_ok());
    assert!(parse(b"999999999999999").is_ok());
    // Only integer tokens are checked; these are explicit doubles.
    assert!(parse(b"9007199254740993.0").is_ok());
    assert!(parse(b"1e20").is_ok());
}

#[test]
fn long_tokens_are_abbreviated_in_messages() {
    let input = "1".repeat(1000);
    let message = err(input.as_bytes()).to_string();
    assert!(
        message.starts_with(&format!("integer {}…", "1".repeat(40))),
        "{message}"
    );
    assert!(message.len() < 200, "{message}");
}

// ---- parsing: strings -----------------------------------------------

#[test]
fn unescaped_control_characters_are_rejected() {
    for c in 0u8..0x20 {
        let input = [b'"', b'a', c, b'"'];
        let e = err(&input);
        assert_eq!(e.offset(), 2, "U+{c:04X}");
        assert_eq!(
            e.to_string(),
            format!("unescaped control character U+{c:04X} in string at byte 2")
        );
    }
    // DEL and U+2028 are not control characters in JSON.
    assert!(parse("\"\u{7f}\u{2028}\"".as_bytes()).is_ok());
}

#[test]
fn invalid_escapes_are_rejected() {
    assert_err(r#""\x""#, "invalid escape \\x in string at byte 1");
    assert_err(r#""a\'""#, "invalid escape \\' in string at byte 2");
    assert_err(r#""\U0041""#, "invalid escape \\U in string at byte 1");
    assert_err(
        "\"\\\u{e9}\"",
        "invalid escape \\\u{e9} in string at byte 1",
    );
    assert_err("\"\\\u{1}\"", "invalid escape in string at byte 1");
    assert_err(
        r#""\u12G4""#,
        "invalid \\u escape in string (expected 4 hex digits) at byte 1",
    );
    assert_err(
        r#"["\u12"]"#,
        "invalid \\u escape in string (expected 4 hex digits) at byte 2",
    );
    assert_err(r#""\u12"#, "unexpected end of input");
    assert_err(r#""\"#, "unexpected end of input");
}

#[test]
fn lone_surrogates_are_rejected() {
    assert_err(r#""\ud800""#, "lone surrogate \\ud800 in string at byte 1");
    assert_err(
        r#"["\udc00"]"#,
        "lone surrogate \\udc00 in string at byte 2",
    );
    assert_err(
        r#""ab\uDBFFx""#,
        "lone surrogate \\udbff in string at byte 3",
    );
    assert_err(
        r#""\ud800\u0041""#,
        "lone surrogate \\ud800 in string at byte 1",
    );
    assert_err(
        r#""\ud800\ud800""#,
        "lone surrogate \\ud800 in string at byte 1",
    );
    assert_err(
        r#""\ude00\ud83d""#,
        "lone surrogate \\ude00 in string at byte 1",
    );
    assert_err(
        r#""\ud800\n""#,
        "lone surrogate \\ud800 in string at byte 1",
    );
    assert_err(r#""\ud800"#, "lone surrogate \\ud800 in string at byte 1");
    assert_err(
        r#""\ud800\uzzzz""#,
        "invalid \\u escape in string (expected 4 hex digits) at byte 7",
    );
    assert!(parse(br#"{"\ud83d\ude00":1}"#).is_ok());
    assert!(parse(br#"{"\ud83d":1}"#).is_err());
}

#[test]
fn unterminated_strings_are_rejected() {
    assert_err(r#""abc"#, "unexpected end of input");
    assert_err(r#"{"a"#, "unexpected end of input");
    assert_eq!(err(br#"{"abc"#).offset(), 5);
}

#[test]
fn invalid_utf8_is_rejected_with_offset() {
    let cases: [(&[u8], usize); 7] = [
        (b"\"abc\xff\"", 4),
        (b"\xc3", 0),
        (b"[\"\xc3(\"]", 2),
        (b"\"\xe2\x82\"", 1),
        (b"\"\xed\xa0\x80\"", 1), // UTF-8-encoded surrogate
        (b"\"\xc0\xaf\"", 1),     // overlong '/'
        (b"{\"a\":1}\x80", 7),
    ];
    for (input, offset) in cases {
        let e = err(input);
        assert_eq!(e.offset(), offset, "{input:?}");
        assert_eq!(e.to_string(), format!("invalid UTF-8 at byte {offset}"));
    }
}

// ---- parsing: structure ---------------------------------------------

#[test]
fn structural_errors() {
    assert_err("", "unexpected end of input");
    assert_err(" \n\t", "unexpected end of input");
    assert_err("x", "unexpected character 'x' at byte 0");
    assert_err("[1,2", "unexpected end of input");
    assert_err("[1,", "unexpected end of input");
    assert_err("{", "unexpected end of input");
    assert_err(r#"{"a""#, "unexpected end of input");
    assert_err(r#"{"a":"#, "unexpected end of input");
    assert_err(r#"{"a":1"#, "unexpected end of input");
    assert_err("[1}", "unexpected character '}' at byte 2");
    assert_err(r#"{"a":1]"#, "unexpected character ']' at byte 6");
    assert_err(r#"{"a" 1}"#, "unexpected character '1' at byte 5");
    assert_err(r#"{a:1}"#, "unexpected character 'a' at byte 1");
    assert_err(r#"{'a':1}"#, "unexpected character '\\'' at byte 1");
    assert_err(r#"{1:1}"#, "unexpected character '1' at byte 1");
    assert_err("[,1]", "unexpected character ',' at byte 1");
    assert_err("[1,,2]", "unexpected character ',' at byte 3");
    assert_err("{,}", "unexpected character ',' at byte 1");
    assert_err("tru", "unexpected end of input");
    assert_err("trUe", "unexpected character 'U' at byte 2");
    assert_err("nul", "unexpected end of input");
    assert_err("True", "unexpected character 'T' at byte 0");
    assert_err("[\u{e9}]", "unexpected character '\u{e9}' at byte 1");
    assert_err("{}{}", "trailing characters after the JSON value at byte 2");
    assert_err(
        r#"{"a":1} x"#,
        "trailing characters after the JSON value at byte 8",
    );
    assert_err(
        "truex",
        "trailing characters after the JSON value at byte 4",
    );
    assert_err("1 2", "trailing characters after the JSON value at byte 2");
    assert_err("[] ,", "trailing characters after the JSON value at byte 3");
}

#[test]
fn trailing_commas_are_rejected() {
    assert_err("[1,]", "trailing comma at byte 2");
    assert_err("[1, \n ]", "trailing comma at byte 2");
    assert_err(r#"{"a":1,}"#, "trailing comma at byte 6");
}

#[test]
fn comments_are_rejected() {
    assert_err("// c\n{}", "unexpected character '/' at byte 0");
    assert_err("{/* c */}", "unexpected character '/' at byte 1");
    assert_err("[1 /* c */]", "unexpected character '/' at byte 3");
    assert_err(
        "{} # c",
        "trailing characters after the JSON value at byte 3",
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    assert_err(
        r#"{"a":1,"b":{"c":2},"a":3}"#,
        r#"duplicate key "a" at byte 19"#,
    );
    // Equal after unescaping.
    assert_err(r#"{"a":1,"\u0061":2}"#, r#"duplicate key "a" at byte 7"#);
    assert_err(r#"{"\n":1,"\n":2}"#, r#"duplicate key "\n" at byte 8"#);
    assert_err(r#"{"":1,"":2}"#, r#"duplicate key "" at byte 6"#);
    // Nested, in arrays.
    assert_err(
        r#"[{"x":[{"k":1,"k":1}]}]"#,
        r#"duplicate key "k" at byte 14"#,
    );
    // The same key in different objects is fine.
    assert!(parse(br#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#).is_ok());
    assert!(parse(br#"{"a":1,"A":2,"a ":3}"#).is_ok());
}

#[test]
fn duplicate_keys_are_found_in_large_objects() {
    let members: Vec<String> = (0..1000).map(|i| format!("\"key{i}\":{i}")).collect();
    let unique = format!("{{{}}}", members.join(","));
    let value = parse(unique.as_bytes()).expect("no duplicates");
    assert_eq!(value.as_object().map(<[_]>::len), Some(1000));
    assert_eq!(value.get("key999"), Some(&Value::Number(999.0)));

    for duplicate_of in [0, 5, 15, 16, 17, 500, 999] {
        let input = format!("{{{},\"key{duplicate_of}\":0}}", members.join(","));
        let e = err(input.as_bytes());
        assert_eq!(
            e.to_string(),
            format!(
                "duplicate key \"key{duplicate_of}\" at byte {}",
                input.len() - 8 - duplicate_of.to_string().len()
            )
        );
    }
}

#[test]
fn duplicate_key_messages_quote_and_abbreviate() {
    let long = "k".repeat(500);
    let input = format!(r#"{{"{long}":1,"{long}":2}}"#);
    let message = err(input.as_bytes()).to_string();
    assert_eq!(
        message,
        format!("duplicate key \"{}…\" at byte 506", "k".repeat(40))
    );
    assert_err(
        r#"{"a\"b":1,"a\"b":2}"#,
        r#"duplicate key "a\"b" at byte 10"#,
    );
}

#[test]
fn nesting_up_to_max_depth_is_accepted() {
    assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
    let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
    assert!(parse(objects.as_bytes()).is_ok());
    let mixed = format!(
        "{}{}1{}{}",
        "{\"a\":".repeat(32),
        "[".repeat(32),
        "]".repeat(32),
        "}".repeat(32)
    );
    assert!(parse(mixed.as_bytes()).is_ok());
}

#[test]
fn nesting_beyond_max_depth_is_rejected() {
    let d = MAX_DEPTH;
    let message = |at: usize| format!("nesting deeper than {d} levels at byte {at}");
    assert_err(&nested(d + 1), &message(d));
    let objects = format!("{}1{}", "{\"a\":".repeat(d + 1), "}".repeat(d + 1));
    assert_err(&objects, &message(d * 5));
    let mixed = format!("{}{{}}{}", "[".repeat(d), "]".repeat(d));
    assert_err(&mixed, &message(d));
}

#[test]
fn very_deep_nesting_is_an_error_not_a_stack_overflow() {
    let input = "[".repeat(100_000);
    assert_eq!(err(input.as_bytes()).offset(), MAX_DEPTH);
    let input = "{\"a\":".repeat(100_000);
    assert_eq!(err(input.as_bytes()).offset(), MAX_DEPTH * 5);
    let input = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(input.as_bytes()).is_err());
    // Run on a small stack too, to show stack use is bounded by MAX_DEPTH.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| parse(&[b'['; 1_000_000]).is_err())
        .expect("spawn");
    assert!(handle.join().expect("no overflow"));
}

#[test]
fn parse_error_api() {
    let e = err(b"[1,]");
    assert_eq!(e.offset(), 2);
    assert_eq!(e.clone(), e);
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert_eq!(boxed.to_string(), "trailing comma at byte 2");
    assert_eq!(err(b"[1").offset(), 2);
    assert_eq!(err(b"").offset(), 0);
}

#[test]
fn documented_example_messages() {
    assert_err(r#"{"a":1,"b":2,"a":3}"#, r#"duplicate key "a" at byte 13"#);
    assert_err(
        r#"{"x": 1e400}"#,
        "number 1e400 is out of range for a double at byte 6",
    );
    assert_err("@", "unexpected character '@' at byte 0");
    assert_err(r#""\ud800""#, "lone surrogate \\ud800 in string at byte 1");
}

// ---- serialization ----------------------------------------------------

#[test]
fn js_number_examples_from_the_spec() {
    for (n, expected) in [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (100.0, "100"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123_456_789_012_345_680_000.0, "123456789012345680000"),
        (999_999_999_999_999_900_000.0, "999999999999999900000"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (0.0000015, "0.0000015"),
        (0.00000123, "0.00000123"),
        (1e-7, "1e-7"),
        (123e-20, "1.23e-18"),
        (5e-324, "5e-324"),
        (-5e-324, "-5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::MIN, "-1.7976931348623157e+308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (2.5e3, "2500"),
        (1e100, "1e+100"),
        (1.25e-300, "1.25e-300"),
        (9_007_199_254_740_992.0, "9007199254740992"),
        (4_294_967_295.0, "4294967295"),
        (123.456, "123.456"),
        (-0.5, "-0.5"),
        (std::f64::consts::PI, "3.141592653589793"),
    ] {
        assert_eq!(js_number(n), expected, "{n:e}");
    }
}

#[test]
fn js_number_breaks_exact_ties_towards_even_digits() {
    // Verified against Node (see cases.json, "round-half-even ties");
    // Rust's `{:e}` alone would print 7.715588606997873e14 etc.
    // Written as text: the literals are exact, but clippy's
    // excessive_precision lint judges them by Rust's own (tie-up) digits.
    for (input, expected) in [
        ("771558860699787.25", "771558860699787.2"),
        ("1509281050376868.25", "1509281050376868.2"),
        ("-943120572029733.25", "-943120572029733.2"),
        ("137859221056851.125", "137859221056851.12"),
        ("119368772219826.625", "119368772219826.62"),
        ("4503599627370495.5", "4503599627370495.5"),
    ] {
        let n: f64 = input.parse().expect("valid float");
        // Exactly representable, so these really are ties.
        assert_eq!(format!("{n:.3}").trim_end_matches('0'), input);
        assert_eq!(js_number(n), expected, "{input}");
    }
}

#[test]
fn js_number_non_finite() {
    assert_eq!(js_number(f64::NAN), "NaN");
    assert_eq!(js_number(f64::INFINITY), "Infinity");
    assert_eq!(js_number(f64::NEG_INFINITY), "-Infinity");
    // JSON.stringify turns them into null.
    let value = Value::Array(vec![Value::Number(f64::NAN), Value::Number(f64::INFINITY)]);
    assert_eq!(value.to_canonical_string(), "[null,null]");
}

#[test]
fn js_number_round_trips_with_shortest_digits() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let n = f64::from_bits(rng.next());
        if !n.is_finite() {
            continue;
        }
        let text = js_number(n);
        assert_eq!(text.parse::<f64>().ok(), Some(n), "{n:e} printed as {text}");
        let mantissa = text.split('e').next().unwrap_or_default();
        let significant = mantissa
            .trim_start_matches(['-', '0', '.'])
            .replace('.', "");
        let shortest = format!("{:e}", n.abs());
        let shortest_mantissa = shortest.split('e').next().unwrap_or_default();
        assert_eq!(
            significant.trim_end_matches('0').len(),
            shortest_mantissa.replace('.', "").len(),
            "{n:e} printed as {text}"
        );
    }
}

#[test]
fn js_string_escapes_exactly_like_json_stringify() {
    assert_eq!(js_string(""), r#""""#);
    assert_eq!(js_string(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(js_string("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
    assert_eq!(
        js_string("/ \u{7f} \u{2028}\u{2029}"),
        "\"/ \u{7f} \u{2028}\u{2029}\""
    );
    assert_eq!(js_string("é日本😀"), "\"é日本😀\"");
    assert_eq!(js_string("\u{1b}[0m"), r#""\u001b[0m""#);
    let named = [
        (8, "\\b"),
        (9, "\\t"),
        (10, "\\n"),
        (12, "\\f"),
        (13, "\\r"),
    ];
    for c in 0u8..0x20 {
        let expected = match named.iter().find(|(code, _)| *code == c) {
            Some((_, escape)) => (*escape).to_owned(),
            None => format!("\\u{c:04x}"),
        };
        assert_eq!(
            js_string(&char::from(c).to_string()),
            format!("\"{expected}\"")
        );
    }
    for c in 0x20u8..0x80 {
        let s = char::from(c).to_string();
        let expected = match c {
            b'"' => "\\\"".to_owned(),
            b'\\' => "\\\\".to_owned(),
            _ => s.clone(),
        };
        assert_eq!(js_string(&s), format!("\"{expected}\""));
    }
}

#[test]
fn escaped_input_is_written_in_stringify_form() {
    assert_eq!(canon(r#""\/\u002F\u0041\u00e9\ud83d\ude00""#), "\"//Aé😀\"");
    assert_eq!(
        canon(r#""\u0000\u001F\u007f\u2028""#),
        "\"\\u0000\\u001f\u{7f}\u{2028}\""
    );
    assert_eq!(canon(r#""\u0008\u000C\u000a""#), r#""\b\f\n""#);
}

#[test]
fn output_is_compact() {
    assert_eq!(canon("[ ]"), "[]");
    assert_eq!(canon("{ }"), "{}");
    assert_eq!(canon("[ 1 , [ 2 , { } ] ]"), "[1,[2,{}]]");
    assert_eq!(
        canon(r#"{ "a" : 1 , "b" : [ true , null ] }"#),
        r#"{"a":1,"b":[true,null]}"#
    );
}

#[test]
fn numbers_are_written_in_js_form() {
    assert_eq!(
        canon("[1.0,-0.0,-0,1e21,1e20,1.5e-7,1e-7,0.000001,123e-20,2.5E+3,1E2,5e-324]"),
        "[1,0,0,1e+21,100000000000000000000,1.5e-7,1e-7,0.000001,1.23e-18,2500,100,5e-324]"
    );
    assert_eq!(
        canon("[9007199254740993.0,123456789012345680000.0,1.7976931348623157e308]"),
        "[9007199254740992,123456789012345680000,1.7976931348623157e+308]"
    );
}

#[test]
fn array_index_keys() {
    for (key, index) in [
        ("0", Some(0)),
        ("1", Some(1)),
        ("42", Some(42)),
        ("4294967294", Some(4_294_967_294)),
        ("4294967295", None),
        ("4294967296", None),
        ("99999999999", None),
        ("01", None),
        ("00", None),
        ("-1", None),
        ("-0", None),
        ("+1", None),
        ("1.0", None),
        ("1e3", None),
        (" 1", None),
        ("1 ", None),
        ("", None),
        ("\u{661}", None), // ARABIC-INDIC DIGIT ONE
    ] {
        assert_eq!(array_index(key), index, "{key:?}");
    }
}

#[test]
fn object_keys_are_ordered_like_a_js_engine() {
    assert_eq!(
        canon(r#"{"10":1,"2":2,"a":3,"1":4,"01":5,"-1":6,"4294967294":7,"4294967295":8}"#),
        r#"{"1":4,"2":2,"10":1,"4294967294":7,"a":3,"01":5,"-1":6,"4294967295":8}"#
    );
    assert_eq!(
        canon(r#"{"b":1,"":2,"0":3,"1.0":4,"z":{"9":1,"y":2,"8":3}}"#),
        r#"{"0":3,"b":1,"":2,"1.0":4,"z":{"8":3,"9":1,"y":2}}"#
    );
    assert_eq!(canon(r#"{"b":1,"a":2}"#), r#"{"b":1,"a":2}"#);
    // Only serialization reorders; the parsed value keeps input order.
    let value = parse(br#"{"b":1,"0":2}"#).expect("valid");
    assert_eq!(
        value
            .as_object()
            .and_then(|m| m.first())
            .map(|(k, _)| k.as_str()),
        Some("b")
    );
}

#[test]
fn write_canonical_appends() {
    let mut out = String::from("prefix:");
    Value::Array(vec![Value::Bool(true)]).write_canonical(&mut out);
    assert_eq!(out, "prefix:[true]");
}

#[test]
fn accessors() {
    let value = parse(br#"{"s":"text","n":1,"a":[],"o":{"x":null}}"#).expect("valid");
    assert_eq!(value.kind(), "object");
    assert_eq!(value.as_object().map(<[_]>::len), Some(4));
    assert_eq!(value.get("s").and_then(Value::as_str), Some("text"));
    assert_eq!(value.get("n").map(Value::kind), Some("number"));
    assert_eq!(value.get("a").map(Value::kind), Some("array"));
    assert_eq!(
        value.get("o").and_then(|o| o.get("x")).map(Value::kind),
        Some("null")
    );
    assert_eq!(value.get("missing"), None);
    assert_eq!(value.get("n").and_then(Value::as_str), None);
    assert_eq!(value.get("n").and_then(Value::as_object), None);
    assert_eq!(Value::Null.get("s"), None);
    assert_eq!(Value::Array(vec![]).get("0"), None);
    assert_eq!(Value::Bool(false).kind(), "boolean");
    assert_eq!(Value::String(String::new()).kind(), "string");
    assert_eq!(Value::Null.kind(), "null");
}

// ---- Node.js ground truth ---------------------------------------------

/// Cases generated by tests/fixtures/stringify/generate.js from Node's
/// `JSON.stringify(JSON.parse(input))`. The fixture file is itself JSON,
/// read with this module's own parser.
#[test]
fn node_stringify_fixtures() {
    let fixtures = include_str!("../../tests/fixtures/stringify/cases.json");
    let cases = match parse(fixtures.as_bytes()) {
        Ok(Value::Array(cases)) => cases,
        other => panic!("cases.json must be a JSON array: {other:?}"),
    };
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    for case in &cases {
        let field = |name: &str| {
            case.get(name)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("case without string {name:?}: {case:?}"))
        };
        let (name, input, expected) = (field("name"), field("input"), field("expected"));
        let value = parse(input.as_bytes()).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert_eq!(value.kind(), "object", "{name:?}");
        assert_eq!(value.to_canonical_string(), expected, "{name:?}");
    }
}

// ---- robustness ---------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Parses `input`; when accepted, checks that serialization is stable.
fn check_input(input: &[u8]) -> bool {
    let Ok(value) = parse(input) else {
        return false;
    };
    let text = value.to_canonical_string();
    match parse(text.as_bytes()) {
        // Equal up to member order, which serialization normalizes.
        Ok(again) => assert_eq!(again.to_canonical_string(), text),
        // Canonical text may spell a large double as a long integer
        // (1e20 -> 100000000000000000000), which parse() refuses.
        Err(e) => assert!(
            e.to_string().starts_with("integer "),
            "{text:?} did not re-parse: {e}"
        ),
    }
    true
}

#[test]
fn never_panics_on_random_and_mutated_input() {
    let seeds: [&[u8]; 8] = [
        br#"{"a":[1,2.5,-0,1e-7,{"b":null}],"c":"\u00e9\ud83d\ude00\n","d":true}"#,
        br#"{"10":1,"2":[],"x":{"y":{"z":[false,"s\"t"]}},"e":1E+21}"#,
        "{\"日本\":\"😀\",\"k\":\"\u{2028}\u{7f}\",\"n\":9007199254740992}".as_bytes(),
        br#"[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]"#,
        br#"{"s":"\/\\\b\f\r\t\"","u":"\uD834\uDD1E","m":-123.456e-10}"#,
        b" [ 1 , 2 , 3 ] ",
        br#""just a string""#,
        b"0.1",
    ];
    let alphabet = b"{}[]:,\"\\/ \t\r\n0123456789-+.eEtrufalsn\xc3\xa9\xed\xa0\x80\xff\x00\x1fu";
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..6000 {
        let mut input: Vec<u8> = if round % 3 == 0 {
            // Random bytes from a JSON-ish alphabet.
            (0..rng.below(40)).map(|_| rng.pick(alphabet)).collect()
        } else {
            rng.pick(&seeds).to_vec()
        };
        for _ in 0..=rng.below(4) {
            let len = input.len();
            match rng.below(6) {
                0 if len > 0 => input[rng.below(len)] = rng.next() as u8,
                1 => input.insert(rng.below(len + 1), rng.pick(alphabet)),
                2 if len > 0 => {
                    input.remove(rng.below(len));
                }
                3 => input.truncate(rng.below(len + 1)),
                4 if len > 0 => {
                    let start = rng.below(len);
                    let end = start + rng.below(len - start + 1);
                    let chunk = input[start..end].to_vec();
                    let at = rng.below(len + 1);
                    input.splice(at..at, chunk);
                }
                _ => {}
            }
        }
        if check_input(&input) {
            accepted += 1;
        }
    }
    // Enough mutants must stay valid for the stability check to matter.
    assert!(accepted > 300, "only {accepted} accepted");
}

#[test]
fn never_panics_on_any_prefix_of_valid_input() {
    let text = "{\"a\":[1,-2.5e+3,{\"\u{65e5}\":\"\\ud83d\\ude00 \u{e9}\\n\"}],\"b\":null,\"c\":true,\"d\":false}";
    for end in 0..=text.len() {
        let result = parse(&text.as_bytes()[..end]);
        assert_eq!(result.is_ok(), end == text.len(), "prefix of {end} bytes");
        if let Err(e) = result {
            assert!(e.offset() <= end);
        }
    }
}

#[test]
fn pretty_text_is_json_stringify_with_two_spaces() {
    // What `JSON.stringify(JSON.parse(input), null, 2)` prints in Node.
    let value =
        parse(br#"{"b":[1,{"c":null,"d":"\u00e9\n"}],"a":{},"1":[],"e":[true,-0,1e21]}"#).unwrap();
    assert_eq!(
        value.to_pretty_string(),
        "{\n  \"1\": [],\n  \"b\": [\n    1,\n    {\n      \"c\": null,\n      \"d\": \"é\\n\"\n    }\n  ],\n  \"a\": {},\n  \"e\": [\n    true,\n    0,\n    1e+21\n  ]\n}"
    );
    assert_eq!(parse(b"[]").unwrap().to_pretty_string(), "[]");
    assert_eq!(parse(b"\"x\"").unwrap().to_pretty_string(), "\"x\"");
    // Compact text is unchanged by the shared writer.
    assert_eq!(
        value.to_canonical_string(),
        r#"{"1":[],"b":[1,{"c":null,"d":"é\n"}],"a":{},"e":[true,0,1e+21]}"#
    );
}
