//! Lock helpers shared by the crate's threads.
//!
//! Every mutex in the agent and the sandbox guards data that stays consistent between
//! statements, so a panic on another thread must not take the holder down with it: the
//! guard of a poisoned mutex is recovered, not unwrapped.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data of a poisoned mutex.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::lock;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_mutex_still_yields_its_data() {
        let m = Arc::new(Mutex::new(7));
        let m2 = Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 7);
    }
}
