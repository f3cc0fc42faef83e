//! The `marketd` binary: everything lives in the library; this only hands over.

/// The store writer allocates and frees many page buffers per commit; glibc's
/// allocator spent a fifth of the writer's time on them, mimalloc a fraction.
/// Built without transparent huge pages (`no_thp`): with them, faulting in and
/// zeroing 2 MiB pages took about a tenth of the daemon's CPU under order load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    marketd::cli::main()
}
