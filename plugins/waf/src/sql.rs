//! SQL conditions that are true whatever the row: a value that is only a
//! comparison of two numbers (`1=1`, `11!=1`, `42 like 42`) is the
//! condition an injection appends, not data. A false one (`11=1`) is left
//! alone, as CRS does, and so is anything longer than a comparison.

/// The constant comparison `canon` (canonical, lower-cased) is, when it is
/// one and it holds.
pub(crate) fn constant_condition(canon: &str) -> Option<&str> {
    let value = canon.trim();
    if value.len() > 48 || !value.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let left_len = digits(value);
    let (left, rest) = value.split_at(left_len);
    let rest = rest.trim_start();
    // Equality only: `123<456` is what a comparison page is sent.
    let (op, right) = ["<=>", "!=", "<>", "==", "=", "like"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|r| (*op, r.trim_start())))?;
    if op == "like" && !rest[4..].starts_with(char::is_whitespace) {
        return None;
    }
    if right.is_empty() || digits(right) != right.len() {
        return None;
    }
    // Compared as numbers of any length: strip leading zeros, then by
    // length and digits.
    let norm = |s: &str| {
        let t = s.trim_start_matches('0');
        (t.len(), t.to_owned())
    };
    let (l, r) = (norm(left), norm(right));
    let order = l.cmp(&r);
    let holds = match op {
        "=" | "==" | "<=>" | "like" => order.is_eq(),
        _ => order.is_ne(),
    };
    holds.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::constant_condition;

    #[test]
    fn true_comparisons_of_numbers_are_conditions() {
        for value in ["1=1", "11!=1", "42 like 42", "007=7", " 5 <> 6 ", "1<=>1"] {
            assert!(constant_condition(value).is_some(), "{value}");
        }
    }

    #[test]
    fn false_comparisons_and_data_are_not() {
        for value in [
            "11=1",
            "11!=11",
            "123<456",
            "2 > 1",
            "1=1 and more",
            "10",
            "a=a",
            "2+2=4",
            "1likes1",
            "3 like 4",
            "1=",
            "1 = x",
        ] {
            assert!(constant_condition(value).is_none(), "{value}");
        }
    }
}
