"""One module per backend; `base` is the executor interface both implement."""
