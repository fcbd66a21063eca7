//! Requests as a server's connection cuts them, for every framed protocol (the first byte
//! picks it), after every protocol's detection.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PROTOCOLS: &[&str] = &["baidu_std", "hulu_pbrpc", "sofa_pbrpc", "nshead"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    brisk::fuzzing::server_frames(PROTOCOLS[usize::from(pick) % PROTOCOLS.len()], rest);
});
