//! Embeds the dashboard's assets (`web/static`) in the binary, compressed, in debug builds
//! too: the tests serve exactly what a release serves, and nothing is read from disk at run
//! time. (`MEMORY_SERVE_QUIET`, set in `.cargo/config.toml`, keeps it from listing every
//! asset as a cargo warning.)

fn main() {
    memory_serve::load_directory_with_embed("web/static", true);
}
