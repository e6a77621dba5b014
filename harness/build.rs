// rstest's #[files] globs are expanded at compile time: rebuild the tests
// when scenario files come or go.
fn main() {
    println!("cargo:rerun-if-changed=../scenarios");
    println!("cargo:rerun-if-changed=tests/fixtures");
}
