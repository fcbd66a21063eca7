//! gRPC: length-prefixed message framing (fed in chunks whose size the first byte gives),
//! decompression of what a message holds, and the header values Brisk parses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    brisk::fuzzing::grpc(usize::from(chunk), rest);
});
