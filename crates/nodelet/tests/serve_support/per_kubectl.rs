/// `per_kubectl! { #[attrs] name; ... }`: one `#[test]` per kubectl client (modules
/// `kubectl_1_32`, `kubectl_1_33`, `kubectl_1_20`), each calling `super::name(bin)`; a client
/// that is not installed is skipped with a note. 1.32 is the SDK's pinned binary:
/// `/usr/bin/kubectl` is a 1.32 dispatcher that runs the client matching the server (1.33).
#[macro_export]
macro_rules! per_kubectl {
    ($($(#[$attr:meta])* $name:ident;)*) => {
        $crate::per_kubectl!(@client kubectl_1_32, $crate::serve_support::KUBECTL_1_32; $($(#[$attr])* $name;)*);
        $crate::per_kubectl!(@client kubectl_1_33, $crate::serve_support::KUBECTL_1_33; $($(#[$attr])* $name;)*);
        $crate::per_kubectl!(@client kubectl_1_20, $crate::serve_support::KUBECTL_1_20; $($(#[$attr])* $name;)*);
    };
    (@client $module:ident, $bin:expr; $($(#[$attr:meta])* $name:ident;)*) => {
        mod $module {
            $(
                #[test]
                $(#[$attr])*
                fn $name() {
                    if $crate::serve_support::installed($bin) {
                        super::$name($bin);
                    }
                }
            )*
        }
    };
}
