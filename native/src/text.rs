//! What the text summary measures of a string, as Python measures it: `len(text)` (code
//! points) and `len(text.split())` (runs of characters that are not `str.isspace()`).

/// Python's `str.isspace()` code points (tests/test_native_decode.py compares the two).
pub const PY_SPACE: [u32; 29] = [
    0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
    0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029,
    0x202f, 0x205f, 0x3000,
];

#[inline]
pub fn is_space(c: u32) -> bool {
    if c < 0x80 {
        return matches!(c, 0x9..=0xd | 0x1c..=0x20);
    }
    PY_SPACE.binary_search(&c).is_ok()
}

/// (code points, tokens) of valid UTF-8.
pub fn measure(b: &[u8]) -> (u32, u32) {
    let mut chars = 0u32;
    let mut tokens = 0u32;
    let mut in_word = false;
    if b.is_ascii() {
        for &c in b {
            let space = matches!(c, 0x9..=0xd | 0x1c..=0x20);
            tokens += (!space && !in_word) as u32;
            in_word = !space;
        }
        return (b.len() as u32, tokens);
    }
    // valid UTF-8: checked by the caller
    for ch in unsafe { std::str::from_utf8_unchecked(b) }.chars() {
        chars += 1;
        let space = is_space(ch as u32);
        tokens += (!space && !in_word) as u32;
        in_word = !space;
    }
    (chars, tokens)
}
