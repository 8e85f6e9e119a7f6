//! Byte sizes in PostgreSQL's notation.
//!
//! PostgreSQL memory units are binary (`1MB` = 1024 kB) and case-sensitive
//! (`kB`, `MB`, `GB`, `TB`). Values are printed in the largest unit that
//! represents them exactly, as PGTune does, so `16MB` rather than `16384kB`.

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

const UNITS: [(u64, &str); 4] = [(TIB, "TB"), (GIB, "GB"), (MIB, "MB"), (KIB, "kB")];

/// `bytes` rounded down to whole kB, in the largest exact unit: `2GB`,
/// `1536MB`, `30247kB`. Anything under 1 kB prints as `0kB`.
pub fn format_memory(bytes: u64) -> String {
    let bytes = bytes / KIB * KIB;
    for (size, unit) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    "0kB".to_string()
}

/// Parses what [`format_memory`] prints (and any `<number><unit>` in
/// PostgreSQL's units). Unit-less numbers and `-1` return `None` because
/// their meaning depends on the setting.
pub fn parse_memory(text: &str) -> Option<u64> {
    let text = text.trim();
    UNITS.iter().find_map(|(size, unit)| {
        let number: u64 = text.strip_suffix(unit)?.trim().parse().ok()?;
        number.checked_mul(*size)
    })
}

/// Rounds down to a whole MiB.
pub fn floor_mib(bytes: u64) -> u64 {
    bytes / MIB * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_largest_exact_unit() {
        let cases = [
            (2 * GIB, "2GB"),
            (1536 * MIB, "1536MB"),
            (16 * MIB, "16MB"),
            (30247 * KIB, "30247kB"),
            (30247 * KIB + 100, "30247kB"),
            (TIB, "1TB"),
            (100, "0kB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(format_memory(bytes), text);
            if bytes % KIB == 0 {
                assert_eq!(parse_memory(text), Some(bytes));
            }
        }
    }

    #[test]
    fn unit_less_values_are_not_guessed() {
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(parse_memory("1024"), None);
        assert_eq!(parse_memory("4mb"), None);
    }
}
