import torch
from fusionzoo_lmf import LowRankFusion

from fusionzoo.testing import check_fusion


def test_contract():
    check_fusion(LowRankFusion, rank=2)


def test_rank_one_is_elementwise_product_of_affine_maps():
    torch.manual_seed(0)
    fusion = LowRankFusion(4, rank=1)
    v, t = torch.randn(3, 4), torch.randn(3, 4)
    ones = torch.ones(3, 1)
    expected = (torch.cat([v, ones], -1) @ fusion.image_factors[0]) * (
        torch.cat([t, ones], -1) @ fusion.text_factors[0]
    )
    expected = expected * fusion.rank_weights[0] + fusion.bias
    out = fusion(v.unsqueeze(1), t.unsqueeze(1)).tokens[:, 0]
    torch.testing.assert_close(out, expected)
