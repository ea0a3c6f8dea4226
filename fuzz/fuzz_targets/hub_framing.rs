//! FIFO hub framing: arbitrary bytes, cut into arbitrary reads, never panic or loop, and the
//! held-back remainder stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshfs_hub::Framer;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut % 64) + 1;
    let mut framer = Framer::new();
    for chunk in rest.chunks(step) {
        let _ = framer.push(chunk, |_| true);
    }
    let _ = framer.flush();
    assert!(framer.is_idle());
});
