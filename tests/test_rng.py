"""Counter-based random numbers: host and tensor hashing agree, draws never depend on a member's
position among others, and their distributions are what treatments assume."""

import torch

from petri.rng import derive_seed, hash32, hash_int, per_image, unit


def test_host_hash_equals_tensor_hash():
    keys = [derive_seed(s, "t") for s in range(5)]
    for counters in [(), (0,), (3, 7), (123456, 0, 1)]:
        for k in keys:
            expected = hash32(torch.tensor(k), *[torch.tensor(c) for c in counters])
            assert hash_int(k, *counters) == int(expected)
            assert int(hash32(k, *counters)) == int(expected)


def test_per_image_is_keyed_by_member_not_position():
    keys = torch.tensor([derive_seed(s, "t") for s in range(4)])
    idx = torch.randint(0, 60000, (4, 50))
    together = per_image(keys, idx, 2)
    for g in range(4):  # alone, or between other members: the same draws
        assert torch.equal(per_image(keys[g:g + 1], idx[g:g + 1], 2), together[g:g + 1])
    assert not torch.equal(per_image(keys, idx, 3), together)  # another epoch, other draws
    assert torch.equal(per_image(keys[:1], idx[:1].flip(-1), 2), together[:1].flip(-1))  # a function of the index


def test_draws_are_uniform():
    keys = torch.tensor([derive_seed(0, "t"), derive_seed(1, "t")])
    h = per_image(keys, torch.arange(100000).expand(2, -1), 1)
    assert h.min() >= 0 and h.max() < 2 ** 32
    u = unit(h)
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    for bit in range(32):  # every bit is a fair coin
        assert abs(((h >> bit) & 1).float().mean() - 0.5) < 0.01
    assert (u[0] < 0.5).logical_xor(u[1] < 0.5).float().mean().sub(0.5).abs() < 0.01  # members independent
