//! Any text as a config file: parsing and validation return a value or a
//! clear error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxflow::config::{FileConfig, Overrides};

fuzz_target!(|text: &str| {
    if let Ok(file) = FileConfig::parse(text) {
        if let Err(e) = file.resolve(&Overrides::default()) {
            assert!(!e.to_string().is_empty());
        }
    }
});
