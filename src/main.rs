//! `spot-connect`: the program is the library's `entry::main` (src/entry.rs).

fn main() {
    spot_connect::entry::main()
}
