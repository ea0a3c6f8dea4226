//! The records of a ZIP archive written front to back in one pass (APPNOTE 6.3.x): each
//! member's local header, its bytes *stored* (no compression: recordings are compressed
//! already, and storing costs no CPU on the recording node), a data descriptor carrying the
//! CRC-32 and size known only once the bytes went by, and at the end the central directory.
//!
//! Names are UTF-8 (flag bit 11). A member of 4 GiB or more, a member starting past 4 GiB,
//! or more than 65,535 members switch to ZIP64 fields where they are needed, so long
//! recordings and big folders come out readable by every unzip (Python's `zipfile` included).

/// Largest value the 32-bit fields hold; at it a field moves to the ZIP64 extra.
const MAX32: u64 = 0xFFFF_FFFF;
/// Most members the 16-bit counts hold.
const MAX16: u64 = 0xFFFF;

/// Flag bit 3: CRC and sizes follow the data, in a data descriptor.
const FLAG_DESCRIPTOR: u16 = 1 << 3;
/// Flag bit 11: the name is UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// "Version needed": 2.0 (folders, stored data, descriptors), 4.5 (ZIP64).
const V20: u16 = 20;
const V45: u16 = 45;
/// "Version made by": Unix (3), so the external attributes hold a Unix mode.
const MADE_BY: u16 = (3 << 8) | V45;

/// One member as the central directory records it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Path inside the archive, `/`-separated; a folder ends with `/`.
    pub name: String,
    pub dir: bool,
    /// Unix permission bits.
    pub mode: u32,
    pub mtime_ns: i64,
    /// Where its local header starts.
    pub offset: u64,
    pub crc: u32,
    /// Bytes stored (what was actually read, which a shrinking file may make smaller than
    /// announced).
    pub size: u64,
    /// Its local header and descriptor use ZIP64 sizes (decided before its bytes, from the
    /// size the file had then).
    pub zip64: bool,
}

impl Member {
    /// A member about to be written at `offset`; `size_hint` is the file's size now (0 for a
    /// folder).
    pub fn new(
        name: String,
        dir: bool,
        mode: u32,
        mtime_ns: i64,
        offset: u64,
        size_hint: u64,
    ) -> Member {
        Member {
            name,
            dir,
            mode,
            mtime_ns,
            offset,
            crc: 0,
            size: 0,
            zip64: size_hint >= MAX32,
        }
    }

    fn flags(&self) -> u16 {
        if self.dir {
            FLAG_UTF8
        } else {
            FLAG_UTF8 | FLAG_DESCRIPTOR
        }
    }

    fn needed(&self) -> u16 {
        if self.zip64 || self.offset >= MAX32 {
            V45
        } else {
            V20
        }
    }

    /// The local file header: CRC and sizes are zero (they follow in the descriptor); a
    /// ZIP64 member says so with `0xFFFFFFFF` and a ZIP64 extra field.
    pub fn local_header(&self) -> Vec<u8> {
        let mut extra = Vec::new();
        if self.zip64 {
            put16(&mut extra, 0x0001);
            put16(&mut extra, 16);
            put64(&mut extra, 0);
            put64(&mut extra, 0);
        }
        let size32 = if self.zip64 { MAX32 as u32 } else { 0 };
        let (time, date) = dos_time(self.mtime_ns);
        let mut out = Vec::with_capacity(30 + self.name.len() + extra.len());
        put32(&mut out, 0x0403_4b50);
        put16(&mut out, self.needed());
        put16(&mut out, self.flags());
        put16(&mut out, 0); // stored
        put16(&mut out, time);
        put16(&mut out, date);
        put32(&mut out, 0);
        put32(&mut out, size32);
        put32(&mut out, size32);
        put16(&mut out, self.name.len() as u16);
        put16(&mut out, extra.len() as u16);
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&extra);
        out
    }

    /// The data descriptor after a file's bytes (none for a folder).
    pub fn descriptor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        put32(&mut out, 0x0807_4b50);
        put32(&mut out, self.crc);
        if self.zip64 {
            put64(&mut out, self.size);
            put64(&mut out, self.size);
        } else {
            put32(&mut out, self.size as u32);
            put32(&mut out, self.size as u32);
        }
        out
    }

    /// Its central directory header.
    pub fn central_header(&self) -> Vec<u8> {
        let big_size = self.zip64 || self.size >= MAX32;
        let big_offset = self.offset >= MAX32;
        let mut extra = Vec::new();
        if big_size || big_offset {
            let mut fields = Vec::new();
            if big_size {
                put64(&mut fields, self.size);
                put64(&mut fields, self.size);
            }
            if big_offset {
                put64(&mut fields, self.offset);
            }
            put16(&mut extra, 0x0001);
            put16(&mut extra, fields.len() as u16);
            extra.extend_from_slice(&fields);
        }
        let size32 = if big_size {
            MAX32 as u32
        } else {
            self.size as u32
        };
        let kind = if self.dir { 0o040_000 } else { 0o100_000 };
        let dos_dir = if self.dir { 0x10 } else { 0 };
        let (time, date) = dos_time(self.mtime_ns);
        let mut out = Vec::with_capacity(46 + self.name.len() + extra.len());
        put32(&mut out, 0x0201_4b50);
        put16(&mut out, MADE_BY);
        put16(&mut out, self.needed());
        put16(&mut out, self.flags());
        put16(&mut out, 0);
        put16(&mut out, time);
        put16(&mut out, date);
        put32(&mut out, self.crc);
        put32(&mut out, size32);
        put32(&mut out, size32);
        put16(&mut out, self.name.len() as u16);
        put16(&mut out, extra.len() as u16);
        put16(&mut out, 0); // comment
        put16(&mut out, 0); // disk
        put16(&mut out, 0); // internal attributes
        put32(&mut out, ((kind | (self.mode & 0o7777)) << 16) | dos_dir);
        put32(&mut out, self.offset.min(MAX32) as u32);
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&extra);
        out
    }
}

/// The end of the archive, after a central directory of `count` members, `size` bytes long,
/// starting at `offset`: the ZIP64 end record and locator when a field overflows, then the
/// classic end record.
pub fn end(count: u64, offset: u64, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(98);
    if count >= MAX16 || offset >= MAX32 || size >= MAX32 {
        let record = offset + size;
        put32(&mut out, 0x0606_4b50);
        put64(&mut out, 44);
        put16(&mut out, MADE_BY);
        put16(&mut out, V45);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put64(&mut out, count);
        put64(&mut out, count);
        put64(&mut out, size);
        put64(&mut out, offset);
        put32(&mut out, 0x0706_4b50);
        put32(&mut out, 0);
        put64(&mut out, record);
        put32(&mut out, 1);
    }
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, count.min(MAX16) as u16);
    put16(&mut out, count.min(MAX16) as u16);
    put32(&mut out, size.min(MAX32) as u32);
    put32(&mut out, offset.min(MAX32) as u32);
    put16(&mut out, 0);
    out
}

/// MS-DOS time and date (two-second resolution, 1980–2107) of a Unix time, in UTC.
fn dos_time(mtime_ns: i64) -> (u16, u16) {
    let secs = mtime_ns.div_euclid(1_000_000_000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if y < 1980 {
        return (0, (1 << 5) | 1); // 1980-01-01 00:00
    }
    if y > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = ((rest / 3600) << 11) | ((rest % 3600 / 60) << 5) | (rest % 60 / 2);
    let date = ((y - 1980) << 9) | (m << 5) | d;
    (time as u16, date as u16)
}

/// Year, month, day of a day count since 1970-01-01 (the proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        // 2024-02-29 13:45:58 UTC
        let t = 1_709_214_358i64 * 1_000_000_000;
        let (time, date) = dos_time(t);
        assert_eq!(date, ((2024 - 1980) << 9) | (2 << 5) | 29);
        assert_eq!(time, (13 << 11) | (45 << 5) | 29);
        assert_eq!(dos_time(0), (0, (1 << 5) | 1));
    }

    #[test]
    fn zip64_only_where_needed() {
        let small = Member::new("a.txt".into(), false, 0o644, 0, 0, 10);
        assert_eq!(small.local_header().len(), 30 + 5);
        assert_eq!(small.descriptor().len(), 16);
        assert_eq!(end(1, 100, 50).len(), 22);
        let mut big = Member::new("b.mkv".into(), false, 0o644, 0, 5 << 32, 5 << 32);
        big.size = 5 << 32;
        assert_eq!(big.local_header().len(), 30 + 5 + 20);
        assert_eq!(big.descriptor().len(), 24);
        // Sizes and offset in the extra: 4 + 3 × 8 bytes.
        assert_eq!(big.central_header().len(), 46 + 5 + 28);
        assert_eq!(end(70_000, 100, 50).len(), 56 + 20 + 22);
    }
}
