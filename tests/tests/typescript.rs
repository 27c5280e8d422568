//! The npm package's TypeScript declarations as a TypeScript app meets them: a strict `tsc`
//! check of `tests/browser/types/consumer.ts` against each package (full and CPU-only), and of
//! `worker-consumer.ts` against the worker entry's declarations. Their
//! right calls must type-check, and every wrong call it marks `@ts-expect-error` (a misspelt
//! surface, option or load setting, an event or pushed title missing a field, a wrong type)
//! must be an error: an unused marker fails the check.
//!
//! Needs what `tests/browser.rs` needs (the wasm package, `npm ci --prefix tests/browser`).

use encore_tests::{browser_prerequisites, temp_dir, workspace_root};

#[test]
fn a_typescript_app_type_checks_and_its_wrong_calls_do_not() {
    let Some(pkg) = browser_prerequisites("TypeScript check") else {
        return;
    };
    let root = workspace_root();
    let tsc = root.join("tests/browser/node_modules/typescript/bin/tsc");
    assert!(
        tsc.exists(),
        "run `npm ci --prefix tests/browser` (or .ci/run)"
    );
    for (name, package) in [("full", pkg.clone()), ("cpu", pkg.join("cpu"))] {
        let declarations =
            std::fs::read_to_string(package.join("encore_wasm.d.ts")).expect("declarations");
        // The public classes name their argument and result types: no `any` left.
        let classes = &declarations[declarations.find("export class Reranker").unwrap()
            ..declarations.find("export type InitInput").unwrap()];
        assert!(
            !classes.contains(": any") && !classes.contains("<any>"),
            "{name}: untyped argument or result in {classes}"
        );
        let dir = temp_dir(&format!("typescript-{name}"));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        for file in ["encore_wasm.d.ts", "encore_wasm.js"] {
            std::fs::copy(package.join(file), dir.join("pkg").join(file)).unwrap();
        }
        // The worker entry is in the full package only.
        let mut apps = vec![dir.join("consumer.ts")];
        if name == "full" {
            for file in ["worker.d.ts", "worker.js"] {
                std::fs::copy(package.join(file), dir.join("pkg").join(file)).unwrap();
            }
            std::fs::copy(
                root.join("tests/browser/types/worker-consumer.ts"),
                dir.join("worker-consumer.ts"),
            )
            .unwrap();
            apps.push(dir.join("worker-consumer.ts"));
        }
        std::fs::copy(
            root.join("tests/browser/types/consumer.ts"),
            dir.join("consumer.ts"),
        )
        .unwrap();
        let out = std::process::Command::new("node")
            .arg(&tsc)
            .args([
                "--noEmit",
                "--strict",
                "--target",
                "es2022",
                "--module",
                "es2022",
                "--moduleResolution",
                "bundler",
                "--lib",
                "esnext,dom",
            ])
            .args(&apps)
            .output()
            .expect("node runs tsc");
        assert!(
            out.status.success(),
            "{name} package: tsc found\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
