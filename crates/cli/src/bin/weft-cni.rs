//! `weft-cni`: the CNI plugin binary (its logic is the weft-cni crate). Built beside `weft` so that
//! `weft install cni` finds it next to itself.

fn main() {
    std::process::exit(weft_cni::main());
}
