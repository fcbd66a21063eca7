//! Responses as a channel's connection cuts them, for every client protocol (the first byte
//! picks it).
#![no_main]

use libfuzzer_sys::fuzz_target;

const PROTOCOLS: &[&str] = &[
    "baidu_std",
    "hulu_pbrpc",
    "sofa_pbrpc",
    "nshead",
    "public_pbrpc",
    "nova_pbrpc",
    "redis",
    "memcache",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    brisk::fuzzing::client_frames(PROTOCOLS[usize::from(pick) % PROTOCOLS.len()], rest);
});
