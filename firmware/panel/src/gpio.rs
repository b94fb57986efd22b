//! The buttons' GPIO lines, read through the Linux GPIO character device
//! (`/dev/gpiochip0`, not the deprecated sysfs interface). Lines are polled — a few
//! microseconds per read, every 10 ms — and the debouncing happens in [`crate::buttons`].
//! Pull-ups are set in the board's `config.txt` (see hardware/README.md): buttons connect the
//! line to ground, so a pressed button reads 0 (`active_low`).

use std::path::Path;

use linux_embedded_hal::gpio_cdev::{Chip, LineHandle, LineRequestFlags};

use crate::PanelError;
use crate::buttons::Button;

pub struct ButtonLines {
    lines: Vec<(Button, LineHandle)>,
    active_low: bool,
}

impl ButtonLines {
    /// Requests the lines `pins` (line offsets on `chip`; on a Pi, the BCM GPIO numbers).
    pub fn open(
        chip: &Path,
        pins: &[(Button, u32)],
        active_low: bool,
    ) -> Result<ButtonLines, PanelError> {
        let err = |e: linux_embedded_hal::gpio_cdev::Error| {
            PanelError::Device(chip.to_owned(), e.to_string())
        };
        let mut c = Chip::new(chip).map_err(err)?;
        let mut lines = Vec::new();
        for (button, pin) in pins {
            let handle = c
                .get_line(*pin)
                .and_then(|l| l.request(LineRequestFlags::INPUT, 0, "pacsbox-panel"))
                .map_err(err)?;
            lines.push((*button, handle));
        }
        Ok(ButtonLines { lines, active_low })
    }

    /// Which buttons are pressed now; a line that cannot be read reads as released.
    pub fn read(&self) -> Vec<(Button, bool)> {
        self.lines
            .iter()
            .map(|(button, handle)| {
                let high = handle
                    .get_value()
                    .map(|v| v != 0)
                    .unwrap_or(self.active_low);
                (*button, high != self.active_low)
            })
            .collect()
    }
}
