//! ISO 8601 timestamps in the common form `YYYY-MM-DDTHH:MM:SS[.f]{Z|+HH:MM|-HH:MM}`, read
//! exactly as Python's `datetime.fromisoformat(text).timestamp()` reads them (UTC when no zone
//! is given). Any other form is `None`: the message goes to the Python path.

/// Epoch seconds of `t`, or None when it is not of the form above (or is not a valid time, or
/// lies too far from 1970 for the exact arithmetic below: about the years 1685 to 2255).
pub fn parse(t: &[u8]) -> Option<f64> {
    if t.len() < 19 || t[4] != b'-' || t[7] != b'-' || t[10] != b'T' || t[13] != b':'
        || t[16] != b':'
    {
        return None;
    }
    let year = digits(&t[0..4])?;
    let month = digits(&t[5..7])?;
    let day = digits(&t[8..10])?;
    let (h, mi, s) = (digits(&t[11..13])?, digits(&t[14..16])?, digits(&t[17..19])?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month)
        || h > 23 || mi > 59 || s > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micro: i64 = 0;
    if t.get(i) == Some(&b'.') {
        let f0 = i + 1;
        let mut j = f0;
        while j < t.len() && t[j].is_ascii_digit() {
            j += 1;
        }
        let n = j - f0;
        if !(1..=6).contains(&n) {
            return None;
        }
        micro = digits(&t[f0..j])? * 10i64.pow((6 - n) as u32);
        i = j;
    }
    let offset = match &t[i..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), oh @ .., b':', m1, m2] if oh.len() == 2 => {
            let (oh, om) = (digits(oh)?, digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            (oh * 3600 + om * 60) * if *sign == b'+' { 1 } else { -1 }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + s - offset;
    let total = seconds.checked_mul(1_000_000)?.checked_add(micro)?;
    if total.unsigned_abs() >= 1u64 << 53 {
        return None; // total as f64 must be exact: then one division rounds as Python's does
    }
    Some(total as f64 / 1e6)
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's algorithm, as monitor/ingest/timestamps.py).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
