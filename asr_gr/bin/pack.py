"""Pack a trained system into one archive that another machine decodes with, as ESPnet's ``pack`` does.

    python -m asr_gr.bin.pack --exp-dir exp/train_adversarial --out adversarial.tar.gz [--checkpoint best.pt]
        [--lm data/lm/char/lm.arpa --lexicon data/lm/char/lexicon.txt --beam-size 20 --lm-weight 1
         --word-score 0 --decoder auto]
    python -m asr_gr.bin.pack --exp-dir exp/train_adversarial --out adversarial.tar.gz \\
        --decode-dir exp/train_adversarial/decode_test_beam100_lm1_ws0     # that decode's whole setup

The archive (.tar.gz, written atomically) holds meta.yaml (versions, creation time, the sha256 of every
member, the decode defaults), config.yaml (token list and CMVN paths relative to the archive),
model.pt (the checkpoint's weights only), cmvn.ark, the token list (tokens.txt or tokens.model),
spk_list.txt, and lm/<LM file> + lm/lexicon.txt when packed with an LM. Load it with
``Speech2Text.from_pretrained("adversarial.tar.gz")`` or ``python -m asr_gr.bin.transcribe --model
adversarial.tar.gz a.wav``.

The search options are those of asr_gr.bin.decode and become the archive's decode defaults; without
--lm/--lexicon/--decode-dir the archive has no LM (greedy, or the prefix beam search with --beam-size).
--decode-dir takes decoder, beam, LM, lexicon, weights and checkpoint from a decode dir's
decode_setup.json (relative paths found from the current dir or the recipe dir); options given beside
it override them.
"""

from __future__ import annotations

import argparse

from asr_gr.bin.common import main_guard
from asr_gr.pack import DecodeDefaults, decode_setup_of, pack_exp
from asr_gr.utils import DataError, setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-dir", required=True)
    ap.add_argument("--out", required=True, help="the archive to write (.tar.gz or .tgz)")
    ap.add_argument("--checkpoint", default=None,
                    help="file in the exp dir: best.pt, epochN.pt, avgN.pt (default: --decode-dir's, else best.pt)")
    ap.add_argument("--decode-dir", default=None,
                    help="a decode dir of the exp dir: its decode_setup.json gives the decode defaults")
    ap.add_argument("--beam-size", type=int, default=None, help="default 1 (greedy without LM)")
    ap.add_argument("--lm", default=None, help="word n-gram LM (ARPA, .arpa.gz, or KenLM binary for flashlight)")
    ap.add_argument("--lexicon", default=None,
                    help="flashlight lexicon (default: the LM's words spelled in tokens)")
    ap.add_argument("--decoder", default=None, choices=["auto", "flashlight", "prefix"], help="default auto")
    ap.add_argument("--lm-weight", type=float, default=None, help="default 0.5")
    ap.add_argument("--word-score", type=float, default=None, help="default 0")
    args = ap.parse_args(argv)
    setup_logging()
    d = DecodeDefaults()
    setup = decode_setup_of(args.decode_dir) if args.decode_dir else {}
    if setup.get("decoder") == "greedy":
        setup["decoder"] = "auto"
    values = {}
    for key in ("decoder", "beam_size", "lm", "lexicon", "lm_weight", "word_score"):
        given = getattr(args, key)
        values[key] = given if given is not None else setup.get(key, getattr(d, key))
    checkpoint = args.checkpoint or setup.get("checkpoint") or "best.pt"
    if values["beam_size"] < 1:
        raise DataError("command line", None, f"--beam-size must be >= 1, got {values['beam_size']}")
    meta = pack_exp(args.exp_dir, args.out, checkpoint, decode=DecodeDefaults(**values), decode_dir=args.decode_dir)
    dec = meta["decode"]
    search = "greedy" if dec["beam_size"] == 1 and not (dec["lm"] or dec["lexicon"]) else \
        f"beam {dec['beam_size']}" + (f", LM {dec['lm']} weight {dec['lm_weight']:g}" if dec["lm"] else "")
    print(f"packed {args.exp_dir} ({checkpoint}; {len(meta['files'])} files; decode defaults: {search}) "
          f"into {args.out}")


if __name__ == "__main__":
    main()
