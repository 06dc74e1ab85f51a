#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    concession_agent_fuzz::checks::check_pos_request(data);
});
