//! redis: replies as a channel reads them, commands as Brisk's redis server reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    brisk::fuzzing::redis_replies(data);
    brisk::fuzzing::redis_commands(data);
});
