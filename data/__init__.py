"""The sample reviews, the generator that writes them and the synthetic data of the benchmarks."""
