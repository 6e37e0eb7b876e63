//! `/sbin/init` of a wanflash appliance; everything is in the library.

#![deny(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    wanflash_init::main_entry()
}
