//! The ACPI power button.
//!
//! With `CONFIG_ACPI_BUTTON` the kernel does not act on the button itself:
//! it reports it as an input device named "Power Button" that sends
//! `KEY_POWER` (with `CONFIG_INPUT_EVDEV`, `/dev/input/eventN`). Init opens
//! those devices and reads their events in its main loop like any other
//! descriptor; a key press powers the box off, as `SIGPWR` does. Without
//! evdev there is no device and the button does nothing (the log says so).
//! QEMU's `system_powerdown` presses this button.

pub const EV_KEY: u16 = 1;
pub const KEY_POWER: u16 = 116;

/// The input device name the ACPI button driver uses.
pub const POWER_BUTTON_NAME: &str = "Power Button";

/// Size of `struct input_event` on this target (a `timeval` then
/// `u16 type, u16 code, s32 value`).
pub const EVENT_SIZE: usize = std::mem::size_of::<nix::libc::input_event>();

/// Whether the events in `bytes` include a press of `KEY_POWER`.
pub fn power_pressed(bytes: &[u8]) -> bool {
    bytes.chunks_exact(EVENT_SIZE).any(|ev| {
        let tail = &ev[EVENT_SIZE - 8..];
        let ty = u16::from_ne_bytes([tail[0], tail[1]]);
        let code = u16::from_ne_bytes([tail[2], tail[3]]);
        let value = i32::from_ne_bytes([tail[4], tail[5], tail[6], tail[7]]);
        ty == EV_KEY && code == KEY_POWER && value == 1
    })
}

/// One encoded event (tests and the fake).
pub fn encode_event(ty: u16, code: u16, value: i32) -> Vec<u8> {
    let mut ev = vec![0u8; EVENT_SIZE - 8];
    ev.extend_from_slice(&ty.to_ne_bytes());
    ev.extend_from_slice(&code.to_ne_bytes());
    ev.extend_from_slice(&value.to_ne_bytes());
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn press_detected_release_and_other_keys_ignored() {
        const EV_SYN: u16 = 0;
        let mut press = encode_event(EV_KEY, KEY_POWER, 1);
        press.extend(encode_event(EV_SYN, 0, 0));
        assert!(power_pressed(&press));
        assert!(
            !power_pressed(&encode_event(EV_KEY, KEY_POWER, 0)),
            "release"
        );
        assert!(!power_pressed(&encode_event(EV_KEY, 115, 1)), "other key");
        assert!(!power_pressed(&press[..EVENT_SIZE - 1]), "partial event");
        #[cfg(target_pointer_width = "64")]
        assert_eq!(EVENT_SIZE, 24);
    }
}
