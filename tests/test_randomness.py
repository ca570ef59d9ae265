"""Keyed random numbers: the hash against a pure-Python splitmix64, the deviates against the
documented Box-Muller formula, and independence from chunking."""

import numpy as np

from highrate.randomness import hash_keys, normal_from_keys

MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def _hash(*keys: int) -> int:
    h = 0
    for k in keys:
        h = _splitmix(h ^ (k & MASK))
    return h


def _keys(n: int = 50):
    rng = np.random.default_rng(5)
    return rng.integers(-(2**40), 2**40, n), rng.integers(0, 3000, n).astype(np.uint32), rng.integers(0, 12, n)


def test_hash_is_splitmix64_of_the_keys():
    event, lumi, index = _keys()
    expected = [_hash(int(e), int(lu), int(i)) for e, lu, i in zip(event, lumi, index, strict=True)]
    assert hash_keys(event, lumi, index).tolist() == expected


def test_deviates_follow_the_documented_formula():
    event, lumi, index = _keys()
    z = normal_from_keys(event, lumi, index)
    assert z.dtype == np.float32
    for k, (e, lu, i) in enumerate(zip(event, lumi, index, strict=True)):
        h = _hash(int(e), int(lu), int(i))
        u1 = ((h >> 40) + 0.5) / 2**24
        u2 = (_splitmix(h) >> 40) / 2**24
        assert abs(float(z[k]) - np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)) < 1e-5


def test_same_keys_same_numbers_whatever_the_chunking():
    event, lumi, index = _keys(10_000)
    whole = normal_from_keys(event, lumi, index)
    parts = np.concatenate([normal_from_keys(event[a:a + 997], lumi[a:a + 997], index[a:a + 997])
                            for a in range(0, len(event), 997)])
    np.testing.assert_array_equal(whole, parts)
    order = np.random.default_rng(1).permutation(len(event))
    np.testing.assert_array_equal(normal_from_keys(event[order], lumi[order], index[order]), whole[order])
    assert not np.array_equal(normal_from_keys(event, lumi, index + 1), whole)


def test_deviates_are_standard_normal():
    rng = np.random.default_rng(2)
    z = normal_from_keys(rng.integers(0, 2**50, 400_000), np.zeros(400_000, dtype=np.int64))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 0.002  # two-sided 2 sigma tail
