//! Kafka record batches (message format v2, as a fetch response carries them) read where they
//! lie: the offset, key and value of each record as positions in the response's buffer, so
//! that a consumer makes no Python object per record. Only uncompressed batches of format v2
//! are read; anything else (compression, the old formats) makes the caller read the whole
//! buffer the usual way (aiokafka), as does a corrupt batch, which that path then reports.
//! Transaction markers (control batches) hold no records and are stepped over.

/// Where the records of a buffer lie.
#[derive(Default)]
pub struct Found {
    /// Start and end of each record's value in the buffer; a null value is (NULL, NULL).
    pub values: Vec<u64>,
    /// Start and end of each record's key, (NULL, NULL) when null.
    pub keys: Vec<u64>,
    pub offsets: Vec<i64>,
    /// The offset after the last whole batch read (where the next fetch starts).
    pub next_offset: i64,
}

pub const NULL: u64 = u64::MAX;
const HEADER: usize = 61; // a v2 batch's header, up to and with its record count
const COMPRESSION: i16 = 0x07;
const CONTROL: i16 = 0x20;

/// Not readable here: the caller reads the buffer the usual way.
#[derive(Debug, PartialEq)]
pub struct Elsewhere;

/// The records at or after `from` in the whole batches of `buf`; a batch cut short at the end
/// (a fetch stops at a size, not at a batch) is left for the next fetch. `check_crcs`: each
/// batch's CRC-32C is checked, as aiokafka does by default.
pub fn read(buf: &[u8], from: i64, check_crcs: bool) -> Result<Found, Elsewhere> {
    let mut found = Found { next_offset: from, ..Found::default() };
    let mut at = 0usize;
    while buf.len() - at >= 17 {
        let base = i64::from_be_bytes(buf[at..at + 8].try_into().unwrap());
        let length = i32::from_be_bytes(buf[at + 8..at + 12].try_into().unwrap());
        if length < (HEADER - 12) as i32 || buf[at + 16] != 2 {
            return Err(Elsewhere); // the old formats, or nonsense
        }
        let end = at + 12 + length as usize;
        if end > buf.len() {
            break; // cut short by the fetch's size
        }
        let batch = &buf[at..end];
        if check_crcs {
            let crc = u32::from_be_bytes(batch[17..21].try_into().unwrap());
            if crc32c::crc32c(&batch[21..]) != crc {
                return Err(Elsewhere);
            }
        }
        let attributes = i16::from_be_bytes(batch[21..23].try_into().unwrap());
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap());
        let count = i32::from_be_bytes(batch[57..61].try_into().unwrap());
        if attributes & COMPRESSION != 0 {
            return Err(Elsewhere);
        }
        if attributes & CONTROL == 0 {
            records(batch, at, base, count, from, &mut found)?;
        }
        found.next_offset = found.next_offset.max(base + last_delta as i64 + 1);
        at = end;
    }
    Ok(found)
}

fn records(batch: &[u8], at: usize, base: i64, count: i32, from: i64, found: &mut Found)
           -> Result<(), Elsewhere> {
    let mut r = Reader { buf: batch, pos: HEADER };
    for _ in 0..count.max(0) {
        let length = r.varint()?;
        let start = r.pos;
        let end = start.checked_add(usize::try_from(length).map_err(|_| Elsewhere)?)
            .filter(|&e| e <= batch.len()).ok_or(Elsewhere)?;
        r.pos += 1; // attributes
        r.varint()?; // timestamp delta
        let delta = r.varint()?;
        let key = r.bytes()?;
        let value = r.bytes()?;
        let headers = r.varint()?;
        for _ in 0..headers.max(0) {
            r.bytes()?;
            r.bytes()?;
        }
        if r.pos != end {
            return Err(Elsewhere);
        }
        let offset = base + delta;
        if offset >= from {
            found.offsets.push(offset);
            for (span, out) in [(key, &mut found.keys), (value, &mut found.values)] {
                match span {
                    Some((a, b)) => out.extend([(at + a) as u64, (at + b) as u64]),
                    None => out.extend([NULL, NULL]),
                }
            }
        }
    }
    if r.pos != batch.len() {
        return Err(Elsewhere);
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// A zigzag varint of up to 64 bits.
    fn varint(&mut self) -> Result<i64, Elsewhere> {
        let mut raw = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(Elsewhere)?;
            self.pos += 1;
            raw |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(Elsewhere)
    }

    /// A length-prefixed field: where it lies, None when null (length -1).
    fn bytes(&mut self) -> Result<Option<(usize, usize)>, Elsewhere> {
        let n = self.varint()?;
        if n == -1 {
            return Ok(None);
        }
        let start = self.pos;
        let end = usize::try_from(n).ok().and_then(|n| start.checked_add(n))
            .filter(|&e| e <= self.buf.len()).ok_or(Elsewhere)?;
        self.pos = end;
        Ok(Some((start, end)))
    }
}
