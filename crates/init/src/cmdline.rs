//! `wanflash.*` boot options: the ones baked into the image first, then the
//! real kernel command line, so the command line wins.

/// Boot options known to init.
pub const KNOWN: &[&str] = &[
    "wanflash.debug",
    "wanflash.rescue",
    "wanflash.test_hang",
    "wanflash.slot",
];

/// Settings taken from the boot options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootOptions {
    /// `wanflash.debug`: more log lines.
    pub debug: bool,
    /// `wanflash.rescue`: the rescue shell instead of the services.
    pub rescue: bool,
    /// `wanflash.test_hang`: once ready, stop petting the watchdog and stop
    /// the main loop (proves that the watchdog resets the box).
    pub test_hang: bool,
    /// `wanflash.slot=a|b`: the root slot syslinux booted (set by the
    /// boot loader's entry, read by the update logic).
    pub slot: Option<char>,
}

/// Where an option came from, for the warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Baked,
    CommandLine,
}

impl Origin {
    fn describe(self) -> &'static str {
        match self {
            Origin::Baked => "baked boot option",
            Origin::CommandLine => "kernel command line option",
        }
    }
}

/// Parses the baked options, then the command line over them. Returns the
/// settings and one warning line per option it could not use.
pub fn parse(baked: &[String], cmdline: &str) -> (BootOptions, Vec<String>) {
    let mut opts = BootOptions::default();
    let mut warnings = Vec::new();
    for word in baked {
        apply(&mut opts, word.trim(), Origin::Baked, &mut warnings);
    }
    for word in split(cmdline) {
        if word.starts_with("wanflash.") {
            apply(&mut opts, &word, Origin::CommandLine, &mut warnings);
        }
    }
    (opts, warnings)
}

fn apply(opts: &mut BootOptions, word: &str, origin: Origin, warnings: &mut Vec<String>) {
    let (key, value) = match word.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (word, None),
    };
    if key == "wanflash.slot" {
        match value {
            Some(v @ ("a" | "b")) => opts.slot = v.chars().next(),
            _ => warnings.push(format!(
                "{} `{word}` ignored: the slot is `a` or `b`",
                origin.describe()
            )),
        }
        return;
    }
    let slot = match key {
        "wanflash.debug" => &mut opts.debug,
        "wanflash.rescue" => &mut opts.rescue,
        "wanflash.test_hang" => &mut opts.test_hang,
        _ => {
            warnings.push(format!(
                "unknown {} `{key}` ignored (known: {})",
                origin.describe(),
                KNOWN.join(", ")
            ));
            return;
        }
    };
    match value.map_or(Some(true), parse_bool) {
        Some(v) => *slot = v,
        None => warnings.push(format!(
            "{} `{word}` ignored: the value must be one of 1, 0, yes, no, on, off, true, false",
            origin.describe()
        )),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "y" | "yes" | "on" | "true" => Some(true),
        "0" | "n" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// Splits a kernel command line into words the way the kernel does:
/// whitespace separates, double quotes group (and are removed).
pub fn split(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    words.push(std::mem::take(&mut cur));
                    has_word = false;
                }
            }
            c => {
                cur.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn slot_is_a_or_b() {
        let (o, w) = parse(&[], "ro wanflash.slot=b");
        assert_eq!(o.slot, Some('b'));
        assert!(w.is_empty(), "{w:?}");
        let (o, w) = parse(&[], "wanflash.slot=c");
        assert_eq!(o.slot, None);
        assert!(w[0].contains("the slot is `a` or `b`"), "{w:?}");
    }

    #[test]
    fn empty_gives_defaults_and_no_warning() {
        let (o, w) = parse(&[], "console=ttyS0,115200 root=PARTUUID=1234-02 ro\n");
        assert_eq!(o, BootOptions::default());
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn known_flags_set() {
        let (o, w) = parse(
            &[],
            "ro wanflash.debug quiet wanflash.rescue wanflash.test_hang",
        );
        assert!(o.debug && o.rescue && o.test_hang);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn command_line_overrides_baked() {
        let (o, w) = parse(
            &s(&["wanflash.debug", "wanflash.rescue=1"]),
            "wanflash.debug=0 init=/sbin/init",
        );
        assert!(!o.debug, "command line must win over baked");
        assert!(o.rescue, "baked option kept when not overridden");
        assert!(w.is_empty(), "{w:?}");
        // And the other way round: baked off, command line on.
        let (o, _) = parse(&s(&["wanflash.debug=off"]), "wanflash.debug");
        assert!(o.debug);
        // Last one on the command line wins.
        let (o, _) = parse(&[], "wanflash.rescue=yes wanflash.rescue=no");
        assert!(!o.rescue);
    }

    #[test]
    fn unknown_option_warns_naming_it_and_the_known_ones() {
        let (o, w) = parse(&s(&["wanflash.bogus"]), "wanflash.debgu=1 wanflash.debug");
        assert!(o.debug);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("`wanflash.bogus`") && w[0].contains("baked"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("`wanflash.debgu`"), "{}", w[1]);
        assert!(w[1].contains("kernel command line"), "{}", w[1]);
        for known in KNOWN {
            assert!(w[1].contains(known), "{} lacks {known}", w[1]);
        }
    }

    #[test]
    fn bad_value_warns_and_keeps_previous() {
        let (o, w) = parse(&s(&["wanflash.debug"]), "wanflash.debug=maybe");
        assert!(o.debug);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("wanflash.debug=maybe"), "{}", w[0]);
    }

    #[test]
    fn other_options_are_not_ours() {
        let (o, w) = parse(&[], "wanflashx=1 foo.wanflash.debug nowanflash.rescue");
        assert_eq!(o, BootOptions::default());
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn split_handles_quotes_and_whitespace() {
        assert_eq!(
            split("  a \"b c\" d=\"e f\"\tg\n"),
            vec!["a", "b c", "d=e f", "g"]
        );
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split("x \"\""), vec!["x", ""]);
    }
}
