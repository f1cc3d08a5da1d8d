//! Clocks: physical clocks (simulated skew and drift), NTP correction and the hybrid logical clock.
