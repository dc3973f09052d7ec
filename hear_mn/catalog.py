"""Every named configuration, as one table: the name of its HEAR module and what it is.

Four groups of names, each with a module ``hear_mn.<name>`` (generated from this table by
``scripts/generate_modules.py``):

* ``paper``: the configurations of *Low-complexity Audio Embedding Extractors* (also under
  ``hear_mn.old_configs.<name>``, as the original README imports them), and the alias
  ``mn40_as_ext_e1_l_all_se`` of its best one;
* ``efficientat_hear``: the 76 top-level modules of the EfficientAT_HEAR package, on its
  newer wrapper (feature vocabulary ``mel_avgs``, ``clf1``, ``clf2``, ``logits``, ``seK``,
  ``bK``), with the original's ``load_model`` defaults;
* ``dymn``: EfficientAT's dynamic MobileNets (DyMN) on the newer wrapper's features (no
  original HEAR module exists; these are ours);
* ``audiomlp``: the Audio-MLP models of the HEAR 2021 challenge.

A new configuration is a row here, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "paper"
EFFICIENTAT_HEAR = "efficientat_hear"
DYMN = "dymn"
AUDIOMLP = "audiomlp"
GROUP_TITLES = {
    PAPER: "the paper's configurations (Schmid et al., EUSIPCO 2023)",
    EFFICIENTAT_HEAR: "the EfficientAT_HEAR package's modules (newer wrapper)",
    DYMN: "EfficientAT's dynamic MobileNets (DyMN), newer wrapper's features",
    AUDIOMLP: "Audio-MLP (HEAR 2021)",
}
DEFAULT_CONFIG = "mn40_ext_e1_l"
BEST_CONFIG = "mn40_ext_e1_l_all_se"


@dataclass(frozen=True)
class NamedConfig:
    """One row: a module name, its checkpoint, features and settings.

    ``features`` are names joined by '_' (the paper's) or ',' (the original's ``mode``, in
    its own order);
    ``pooling`` None is the default (``avg_ch_pool``); ``timestamp_window`` (ms) None is the
    default (160 ms); ``declared_size`` is the embedding size the original module declares
    (None where it is not a module of the original package), which is not always the size
    it outputs.
    """

    name: str
    group: str
    checkpoint: str
    features: str = ""
    pooling: str | None = None
    timestamp_window: int | None = None
    declared_size: int | None = None
    old_configs: bool = False


def _rows(group: str, table: str, **fields: object) -> list[NamedConfig]:
    rows = []
    for line in table.strip().splitlines():
        name, checkpoint, features, pooling, window, size = line.split()
        rows.append(
            NamedConfig(
                name,
                group,
                checkpoint,
                features,
                None if pooling == "-" else pooling,
                None if window == "-" else int(window),
                None if size == "-" else int(size),
                **fields,
            )
        )
    return rows


# name, checkpoint, features, pooling, timestamp window (ms), declared size; "-": default/none
PAPER_TABLE = """
    mn04_e1_l                                mn04_as          e1_l                                        -                   -    -
    mn10_e1_l                                mn10_as          e1_l                                        -                   -    -
    mn10_mels_256_e1_l                       mn10_as_mels_256 e1_l                                        -                   -    -
    mn40_e1_l                                mn40_as          e1_l                                        -                   -    -
    mn40_ext_e1                              mn40_as_ext      e1                                          -                   -    -
    mn40_ext_e1_l                            mn40_as_ext      e1_l                                        -                   -    -
    mn40_ext_clf_l                           mn40_as_ext      clf_l                                       -                   -    -
    mn40_ext_e1_l_se                         mn40_as_ext      e1_l_se                                     -                   -    -
    mn40_ext_e1_l_all_se                     mn40_as_ext      e1_l_all_se                                 -                   -    -
    mn40_ext_e1_l_block                      mn40_as_ext      e1_l_block                                  -                   -    -
    mn40_ext_e1_l_se_block                   mn40_as_ext      e1_l_se_block                               -                   -    -
    mn40_ext_e1_l_mels                       mn40_as_ext      e1_l_mels                                   -                   -    -
    mn40_ext_e1_all_se_mels                  mn40_as_ext      e1_all_se_mels                              -                   -    -
    mn40_ext_clf_all_se_mels                 mn40_as_ext      clf_all_se_mels                             -                   -    -
"""
# The 76 modules, with the original's load_model defaults. mn10_all_b_mel_avgs_ts320 uses a
# 1280 ms window in the original, whatever its name says: so does ours (see the README).
EFFICIENTAT_HEAR_TABLE = """
    mn01_all_b_avg_max_time_pool             mn01_as          b5,b11,b13,b15                              avg_max_time_pool   -    384
    mn01_all_b_avg_time_pool                 mn01_as          b5,b11,b13,b15                              avg_time_pool       -    384
    mn01_all_b_mel_avgs                      mn01_as          b5,b11,b13,b15,mel_avgs                     -                   -    184
    mn02_all_b_mel_avgs                      mn02_as          b5,b11,b13,b15,mel_avgs                     -                   -    224
    mn04_all_b_mel_avgs                      mn04_as          b5,b11,b13,b15,mel_avgs                     -                   -    320
    mn05_all_b_avg_max_time_pool             mn05_as          b5,b11,b13,b15                              avg_max_time_pool   -    1472
    mn05_all_b_avg_time_pool                 mn05_as          b5,b11,b13,b15                              avg_time_pool       -    1472
    mn05_all_b_mel_avgs                      mn05_as          b5,b11,b13,b15,mel_avgs                     -                   -    368
    mn10_all_b                               mn10_as          b5,b11,b13,b15                              -                   -    472
    mn10_all_b_add_avg_max_ch_pool           mn10_as          b5,b11,b13,b15                              add_avg_max_ch_pool -    472
    mn10_all_b_all_se                        mn10_as          b5,b11,b13,b15,se5,se11,se13,se15           -                   -    1032
    mn10_all_b_avg_max_time_pool             mn10_as          b5,b11,b13,b15                              avg_max_time_pool   -    2816
    mn10_all_b_avg_time_pool                 mn10_as          b5,b11,b13,b15                              avg_time_pool       -    2816
    mn10_all_b_clf1                          mn10_as          b5,b11,b13,b15,clf1                         -                   -    1432
    mn10_all_b_clf2                          mn10_as          b5,b11,b13,b15,clf2                         -                   -    1752
    mn10_all_b_logits                        mn10_as          b5,b11,b13,b15,logits                       -                   -    999
    mn10_all_b_max_ch_pool                   mn10_as          b5,b11,b13,b15                              max_ch_pool         -    472
    mn10_all_b_mel_avgs                      mn10_as          b5,b11,b13,b15,mel_avgs                     -                   -    600
    mn10_all_b_mel_avgs_add_avg_max_ch_pool  mn10_as          b5,b11,b13,b15,mel_avgs                     add_avg_max_ch_pool -    600
    mn10_all_b_mel_avgs_avg_time_pool        mn10_as          b5,b11,b13,b15,mel_avgs                     avg_time_pool       -    2944
    mn10_all_b_mel_avgs_cat_avg_max_ch_pool  mn10_as          b5,b11,b13,b15,mel_avgs                     cat_avg_max_ch_pool -    1072
    mn10_all_b_mel_avgs_fc                   mn10_as_fc       b5,b11,b13,b15,mel_avgs                     -                   -    600
    mn10_all_b_mel_avgs_hop15                mn10_as_hop_15   b5,b11,b13,b15,mel_avgs                     -                   -    600
    mn10_all_b_mel_avgs_hop20                mn10_as_hop_20   b5,b11,b13,b15,mel_avgs                     -                   -    600
    mn10_all_b_mel_avgs_hop25                mn10_as_hop_25   b5,b11,b13,b15,mel_avgs                     -                   -    600
    mn10_all_b_mel_avgs_hop5                 mn10_as_hop_5    b5,b11,b13,b15,mel_avgs                     -                   -    600
    mn10_all_b_mel_avgs_max_ch_pool          mn10_as          b5,b11,b13,b15,mel_avgs                     max_ch_pool         -    600
    mn10_all_b_mel_avgs_mels256              mn10_as_mels_256 b5,b11,b13,b15,mel_avgs                     -                   -    728
    mn10_all_b_mel_avgs_mels40               mn10_as_mels_40  b5,b11,b13,b15,mel_avgs                     -                   -    512
    mn10_all_b_mel_avgs_mels64               mn10_as_mels_64  b5,b11,b13,b15,mel_avgs                     -                   -    536
    mn10_all_b_mel_avgs_ts1280               mn10_as          b5,b11,b13,b15,mel_avgs                     -                   1280 600
    mn10_all_b_mel_avgs_ts320                mn10_as          b5,b11,b13,b15,mel_avgs                     -                   1280 600
    mn10_all_b_mel_avgs_ts640                mn10_as          b5,b11,b13,b15,mel_avgs                     -                   640  600
    mn10_all_se                              mn10_as          se5,se11,se13,se15                          -                   -    560
    mn10_all_se_clf1                         mn10_as          se5,se11,se13,se15,clf1                     -                   -    1520
    mn10_all_se_clf2                         mn10_as          se5,se11,se13,se15,clf2                     -                   -    1840
    mn10_all_se_logits                       mn10_as          se5,se11,se13,se15,logits                   -                   -    1087
    mn10_all_se_mel_avgs                     mn10_as          se5,se11,se13,se15,mel_avgs                 -                   -    688
    mn10_allmode_all_b_clf1                  mn10_as          mel_avgs,clf1,b5,b11,b13,b15,logits         -                   -    2087
    mn10_allmode_all_b_clf2                  mn10_as          mel_avgs,clf2,b5,b11,b13,b15,logits         -                   -    2407
    mn10_allmode_all_se_clf1                 mn10_as          mel_avgs,clf1,se5,se11,se13,se15,logits     -                   -    2175
    mn10_allmode_all_se_clf2                 mn10_as          mel_avgs,clf2,se5,se11,se13,se15,logits     -                   -    2495
    mn10_b0_1_2_3                            mn10_as          b0,b1,b2,b3                                 -                   -    80
    mn10_b1                                  mn10_as          b1                                          -                   -    16
    mn10_b10                                 mn10_as          b10                                         -                   -    80
    mn10_b11                                 mn10_as          b11                                         -                   -    112
    mn10_b11_13_15                           mn10_as          b11,b13,b15                                 -                   -    432
    mn10_b12                                 mn10_as          b12                                         -                   -    112
    mn10_b12_13_14_15                        mn10_as          b12,b13,b14,b15                             -                   -    592
    mn10_b13                                 mn10_as          b13                                         -                   -    160
    mn10_b14                                 mn10_as          b14                                         -                   -    160
    mn10_b15                                 mn10_as          b15                                         -                   -    160
    mn10_b2                                  mn10_as          b2                                          -                   -    24
    mn10_b3                                  mn10_as          b3                                          -                   -    24
    mn10_b4                                  mn10_as          b4                                          -                   -    40
    mn10_b4_5_6_7                            mn10_as          b4,b5,b6,b7                                 -                   -    200
    mn10_b5                                  mn10_as          b5                                          -                   -    40
    mn10_b5_11_13                            mn10_as          b5,b11,b13                                  -                   -    312
    mn10_b5_11_15                            mn10_as          b5,b11,b15                                  -                   -    312
    mn10_b5_13_15                            mn10_as          b5,b13,b15                                  -                   -    360
    mn10_b6                                  mn10_as          b6                                          -                   -    40
    mn10_b7                                  mn10_as          b7                                          -                   -    80
    mn10_b8                                  mn10_as          b8                                          -                   -    80
    mn10_b8_9_10_11                          mn10_as          b8,b9,b10,b11                               -                   -    352
    mn10_b9                                  mn10_as          b9                                          -                   -    80
    mn10_clf1                                mn10_as          clf1                                        -                   -    960
    mn10_clf2                                mn10_as          clf2                                        -                   -    1280
    mn10_logits                              mn10_as          logits                                      -                   -    527
    mn10_mel_avgs                            mn10_as          mel_avgs                                    -                   -    128
    mn20_all_b_mel_avgs                      mn20_as          b5,b11,b13,b15,mel_avgs                     -                   -    1072
    mn30_all_b_avg_time_pool                 mn30_as          b5,b11,b13,b15                              avg_time_pool       -    8448
    mn30_all_b_mel_avgs                      mn30_as          b5,b11,b13,b15,mel_avgs                     -                   -    1544
    mn40_all_b_mel_avgs                      mn40_as          b5,b11,b13,b15,mel_avgs                     -                   -    2016
    mn40_all_se_mel_avgs                     mn40_as          se5,se11,se13,se15,mel_avgs                 -                   -    2360
    mn40_clf1                                mn40_as          clf1                                        -                   -    3840
    mn40_clf2                                mn40_as          clf2                                        -                   -    2016
"""

DYMN_TABLE = """
    dymn04_all_b_mel_avgs                    dymn04_as        b5,b11,b13,b15,mel_avgs                     -                   -    -
    dymn10_all_b_mel_avgs                    dymn10_as        b5,b11,b13,b15,mel_avgs                     -                   -    -
    dymn20_all_b_mel_avgs                    dymn20_as        b5,b11,b13,b15,mel_avgs                     -                   -    -
    dymn04_clf1_logits                       dymn04_as        clf1,logits                                 -                   -    -
    dymn10_clf1_logits                       dymn10_as        clf1,logits                                 -                   -    -
    dymn20_clf1_logits                       dymn20_as        clf1,logits                                 -                   -    -
"""

NAMED: dict[str, NamedConfig] = {
    row.name: row
    for row in (
        *_rows(PAPER, PAPER_TABLE, old_configs=True),
        NamedConfig("mn40_as_ext_e1_l_all_se", PAPER, "mn40_as_ext", "e1_l_all_se"),
        *_rows(EFFICIENTAT_HEAR, EFFICIENTAT_HEAR_TABLE),
        *_rows(DYMN, DYMN_TABLE),
        NamedConfig("kwmlp", AUDIOMLP, "kwmlp"),
        NamedConfig("audiomae", AUDIOMLP, "audiomae"),
    )
}
AUDIOMLP_CONFIGS: tuple[str, ...] = tuple(
    name for name, row in NAMED.items() if row.group == AUDIOMLP
)
