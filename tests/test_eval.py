"""Evaluation runners on a tiny prepared corpus and a tiny codec checkpoint; ASR, speaker and
encoder backends on tiny random-weight models saved to disk and loaded back by path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semantic_bridge.config import EvalProbeConfig, EvalWerConfig, params_from_dict
from semantic_bridge.base import shards
from semantic_bridge.base.evalsets import read_reasonaqa
from semantic_bridge.evaluate import eer as E
from semantic_bridge.evaluate import probe as P
from semantic_bridge.evaluate import reasoning as R
from semantic_bridge.evaluate.asr import NemoRecognizer, WhisperRecognizer, make_recognizer
from semantic_bridge.evaluate.common import load_codec, resynthesize
from semantic_bridge.evaluate.speaker import MfccSpeaker
from semantic_bridge.evaluate.swap import pick_pairs, run_swap
from semantic_bridge.evaluate.wer import run_wer

from conftest import tiny_nemo_frontend, tone
from eval_fixtures import tiny_codec_checkpoint, tiny_whisper


@pytest.fixture(scope="module")
def eval_params(factory_raw, tmp_path_factory):
    raw = json.loads(json.dumps(factory_raw))
    raw["data"]["splits"]["dev_speakers"] = 3  # enough for the linear speaker probe
    raw["data"]["synthetic"]["n_speakers"] = 9
    return params_from_dict(raw)


@pytest.fixture(scope="module")
def prepared(eval_params, tmp_path_factory) -> Path:
    from semantic_bridge.corpus.prepare import run_prepare

    out = tmp_path_factory.mktemp("eval") / "prepared"
    run_prepare(eval_params.data, eval_params.seed, out)
    return out


@pytest.fixture(scope="module")
def codec_path(eval_params, prepared, tmp_path_factory) -> Path:
    audios = [r["audio"] for r in shards.iter_rows(prepared / "corpus" / "train", columns=["audio"])]
    return tiny_codec_checkpoint(tmp_path_factory.mktemp("codec") / "codec.pt", eval_params, audios)


# --------------------------------------------------------------------------- codec helpers
def test_resynthesis_decodes_exactly_the_requested_levels(codec_path):
    codec = load_codec(codec_path).codec
    audio = tone(1.0, 24000)
    codes = codec.encode(torch.from_numpy(audio)[None, None])
    subsets = ([0], [0, 1], None)
    got = resynthesize(codec, audio, subsets)  # one encoding, every subset decoded from it
    for levels, wave in zip(subsets, got):
        np.testing.assert_array_equal(wave, codec.decode(codes, levels)[0, 0, : len(audio)].numpy())
    assert not np.array_equal(got[0], got[2])
    assert codec.level_groups() == {"cb0": [0], "cb1": [1], "cb0_1": [0, 1], "cb2_8": list(range(2, 9)),
                                    "all": list(range(9))}


# --------------------------------------------------------------------------- eval_wer
def test_wer_stage_rows_bitrates_and_plot(eval_params, prepared, codec_path, tmp_path):
    m = run_wer(eval_params.eval.wer, "embedded", str(prepared / "corpus"), str(codec_path), str(tmp_path / "wer.csv"))
    assert m["scale"] == "embedded" and m["models"]["asr"] == {"backend": "faster_whisper",
                                                                "model": "whisper-tiny.en"}
    assert m["models"]["codec"]["checkpoint"] == str(codec_path)
    assert list(m["rows"]) == ["original", "all", "cb0_1", "cb0"]
    n_test = shards.num_rows(prepared / "corpus" / "test")
    assert m["utterances"] == min(eval_params.eval.wer.max_utterances, n_test)
    # log2(64) = 6 bits per code at 12.5 Hz
    assert [m["rows"][r]["bitrate_bps"] for r in ("all", "cb0_1", "cb0")] == [9 * 75.0, 2 * 75.0, 75.0]
    assert m["rows"]["original"]["bitrate_bps"] == 16 * 24000
    for row in m["rows"].values():
        assert 0 <= row["wer"] and 0 <= row["cer"]
    # Whisper tiny.en hears the synthetic speech: the ceiling row is far from all-wrong
    assert m["rows"]["original"]["wer"] < 0.5
    lines = (tmp_path / "wer.csv").read_text().splitlines()
    assert lines[0] == "row,wer,cer,bitrate_bps" and len(lines) == 5


def test_whisper_backend_on_a_tiny_checkpoint(tmp_path, monkeypatch):
    from semantic_bridge.evaluate import asr as A

    path = tiny_whisper(tmp_path / "whisper")
    asr = WhisperRecognizer(str(path), batch_size=2)
    assert asr.kwargs["language"] == "en"
    audios = [(tone(1.0, 24000), 24000), (tone(0.5, 16000), 16000), (tone(0.3, 8000), 8000)]
    texts = asr.transcribe(audios)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    # the loop cap: at most 2 + 4/s text tokens each (random weights never stop by themselves),
    # each hypothesis cut at its own cap although a batch decodes to its longest one's
    monkeypatch.setattr(A, "TOKENS_PER_SECOND", 4)
    monkeypatch.setattr(A, "TOKEN_ALLOWANCE", 2)
    before = asr.capped
    capped = asr.transcribe(audios)
    tok = asr.processor.tokenizer
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in capped]
    assert [n <= A.token_cap(len(a) / sr) for n, (a, sr) in zip(lengths, audios)] == [True] * 3
    assert asr.capped - before == 3 and asr.last_capped == [True] * 3  # per hypothesis, this call


@pytest.mark.slow
def test_nemo_asr_backend_on_a_tiny_model(tmp_path):
    from test_align import _tiny_nemo_ctc

    path = _tiny_nemo_ctc(tmp_path / "tiny_ctc.nemo")
    asr = NemoRecognizer(str(path), batch_size=2)
    texts = asr.transcribe([(tone(1.0, 24000), 24000), (tone(0.6, 24000), 24000)])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    with pytest.raises(FileNotFoundError, match="eval.wer.model"):
        NemoRecognizer(str(tmp_path / "missing.nemo"))


def test_asr_params_need_a_model_for_whisper_and_nemo():
    from semantic_bridge.config import ConfigError

    with pytest.raises(ConfigError, match="eval.wer.model"):
        EvalWerConfig(backend="whisper", model=None)
    with pytest.raises(ConfigError, match="eval.wer.backend"):
        EvalWerConfig(backend="kaldi")
    asr = make_recognizer(EvalWerConfig(backend="pocketsphinx", pocketsphinx_lm="bundled"))
    assert asr.name == "pocketsphinx" and "bundled" in asr.model
    asr.close()
    with pytest.raises(ConfigError, match="pocketsphinx_lm"):
        EvalWerConfig(pocketsphinx_lm="wiki")


def test_bigram_arpa_is_a_normalised_backoff_model():
    from semantic_bridge.evaluate.arpa import bigram_arpa, lm_sentences

    sents = list(lm_sentences(["The cat sat.", "The dog sat down!", "A cat ran"], lambda w: w != "down"))
    assert sents == [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat", "ran"]]
    uni, bi, back = {}, {}, {}
    section = None
    for line in bigram_arpa(sents).splitlines():
        if line.startswith("\\"):
            section = line
        elif line and section == "\\1-grams:":
            p, w, b = line.split()
            uni[w], back[w] = 10 ** float(p), 10 ** float(b)
        elif line and section == "\\2-grams:":
            p, u, w = line.split()
            bi[(u, w)] = 10 ** float(p)
    words = [w for w in uni if w != "<s>"]
    assert sum(uni[w] for w in words) == pytest.approx(1.0)
    for u in uni:  # every history's distribution (seen bigrams + backed-off rest) sums to 1
        total = sum(bi.get((u, w), back[u] * uni[w]) for w in words)
        assert total == pytest.approx(1.0), u
    # "the" was followed by cat and dog once each: (1 - 0.5) / 2
    assert bi[("the", "cat")] == pytest.approx(0.25)


# --------------------------------------------------------------------------- eval_eer
def test_linear_probe_scores_separate_speakers_it_never_saw():
    """Embeddings where speaker identity lives in 3 of 20 dimensions, buried in noise elsewhere:
    the probe (trained on other speakers) finds those dimensions; its EER beats raw cosine."""
    rng = np.random.default_rng(0)

    def speakers(n_spk, n_utt):
        centres = np.zeros((n_spk, 20))
        centres[:, :3] = rng.normal(size=(n_spk, 3)) * 3
        x = np.repeat(centres, n_utt, 0) + rng.normal(size=(n_spk * n_utt, 20)) * np.r_[[0.3] * 3, [5.0] * 17]
        return x, [f"s{i}" for i in range(n_spk) for _ in range(n_utt)]

    dev_x, dev_spk = speakers(8, 20)
    test_x, test_spk = speakers(6, 10)
    probe = E.LinearProbe(dev_x, dev_spk, c=1.0, seed=0)
    pairs = [(i, j) for i in range(len(test_x)) for j in range(i + 1, len(test_x))]
    labels = np.array([test_spk[i] == test_spk[j] for i, j in pairs], int)
    from semantic_bridge.evaluate.metrics import cosine_scores, eer

    a, b = [i for i, _ in pairs], [j for _, j in pairs]
    raw = eer(cosine_scores(test_x[a], test_x[b]), labels)
    mapped = probe(test_x)
    probed = eer(cosine_scores(mapped[a], mapped[b]), labels)
    assert probed < raw / 2, (probed, raw)


def test_pooling():
    frames = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(E.pool(frames, "mean"), [2.0, 4.0])
    np.testing.assert_allclose(E.pool(frames, "mean_std"), [2.0, 4.0, 1.0, 2.0])


def test_eer_stage_every_source_pooling_and_scorer(eval_params, prepared, codec_path, tmp_path):
    m = E.run_eer(eval_params.eval.eer, "embedded", eval_params.seed, str(prepared), str(codec_path), str(tmp_path))
    assert set(m["eer"]) == {"original", "latent", "cb0", "cb1", "cb0_1", "cb2_8", "all"}
    assert m["dev"]["speakers"] == 3 and m["scorers"] == ["cosine", "probe"]
    # the reference row: real CAM++ on the original audio, cosine-scored, well below chance
    original = m["eer"].pop("original")
    assert set(original) == {"embedding"} and set(original["embedding"]) == {"cosine"}
    assert original["embedding"]["cosine"]["eer"] < 0.25 and m["models"]["reference"]["name"] == "campplus"
    for source in m["eer"].values():
        assert set(source) == {"mean", "mean_std"}
        for scorers in source.values():
            assert set(scorers) == {"cosine", "probe"}
            for r in scorers.values():
                assert 0 <= r["eer"] <= 1 and 0 <= r["min_dcf"] <= 1
    assert m["trials"]["target"] > 0 and m["trials"]["nontarget"] > 0
    assert len((tmp_path / "eer.csv").read_text().splitlines()) == 1 + 6 * 2 * 2 + 1
    assert sorted(p.name for p in (tmp_path / "det").iterdir()) == [
        "all.png", "cb0.png", "cb0_1.png", "cb1.png", "cb2_8.png", "latent.png", "original.png"]


def test_frame_features_sum_the_levels_of_each_group(codec_path):
    codec = load_codec(codec_path).codec
    feats = E.frame_features(codec, tone(1.0, 24000))
    with torch.no_grad():
        q = codec.quantize(codec.encode_latent(torch.from_numpy(tone(1.0, 24000))[None, None]))
    np.testing.assert_allclose(feats["cb0_1"], (q.levels[0, 0] + q.levels[0, 1]).T.numpy(), atol=1e-6)
    np.testing.assert_allclose(feats["cb2_8"], q.levels[0, 2:].sum(0).T.numpy(), atol=1e-5)
    assert feats["latent"].shape == feats["all"].shape == (13, codec.config.hidden_size)


# --------------------------------------------------------------------------- eval_swap
def test_pairs_are_distinct_and_of_different_speakers():
    spk = ["a", "a", "b", "c", "c"]
    pairs = pick_pairs(spk, 6, seed=1)
    assert len(pairs) == len(set(pairs)) == 6
    assert all(spk[a] != spk[b] for a, b in pairs)
    assert pick_pairs(spk, 6, seed=1) == pairs
    assert len(pick_pairs(["a", "b"], 10, seed=0)) == 2  # fewer when the split has fewer


def test_mfcc_speaker_embedding_follows_the_voice():
    spk = MfccSpeaker()
    low, low2, high = tone(1.0, 24000, 120.0), tone(1.2, 24000, 121.0), tone(1.0, 24000, 330.0)
    from semantic_bridge.evaluate.metrics import cosine_scores

    def sim(a, b):
        return float(cosine_scores(spk.embed(a, 24000)[None], spk.embed(b, 24000)[None])[0])

    assert sim(low, low) == pytest.approx(1.0)
    assert sim(low, low2) > sim(low, high)


def test_swap_rows_are_named_by_the_content_group_they_take_from_a():
    from semantic_bridge.evaluate.swap import swap_rows

    assert swap_rows([5, 1, 3, 2]) == {"cb0": 1, "cb0_1": 2, "cb0_2": 3, "cb0_4": 5}


def test_swap_stage(eval_params, prepared, codec_path, tmp_path):
    plot = tmp_path / "swap.csv"
    m = run_swap(eval_params.eval.swap, eval_params.eval.wer, "embedded", eval_params.seed,
                 str(prepared / "corpus"), str(codec_path), str(tmp_path / "swap"), str(plot))
    assert m["pairs"] == 3 and m["content_levels"] == [1, 2, 3, 5]
    assert list(m["rows"]) == ["cb0", "cb0_1", "cb0_2", "cb0_4"]
    per_level = m["rows"]["cb0"]["content_bitrate_bps"]
    for row in m["rows"].values():  # content bitrate is A's levels only, at 6 bits x 12.5 Hz each
        assert row["content_bitrate_bps"] == row["content_levels"] * per_level == row["content_levels"] * 75.0
        for key in ("similarity_to_a", "similarity_to_b", "closer_to_b_fraction"):
            assert -1 <= row[key] <= 1
        assert row["wer_vs_a"] >= 0 and row["asr_capped"] >= 0
    assert -1 <= m["a_to_b_originals"] <= 1
    assert m["models"]["speaker"] == {"backend": "campplus", "model": "campplus"}
    lines = plot.read_text().splitlines()
    assert lines[0].startswith("setting,content_levels") and [ln.split(",")[0] for ln in lines[1:]] == list(m["rows"])
    assert sorted(p.name for p in (tmp_path / "swap").iterdir()) == [
        "pair00_A.wav", "pair00_B.wav", "pair00_swap_cb0.wav", "pair00_swap_cb0_1.wav",
        "pair00_swap_cb0_2.wav", "pair00_swap_cb0_4.wav", "pairs.tsv"]


def test_swap_levels_must_leave_b_a_level():
    from semantic_bridge.base.errors import ConfigError
    from semantic_bridge.config import params_from_dict

    with pytest.raises(ConfigError, match="eval.swap.content_levels: each must be below the codec's 9"):
        params_from_dict({"eval": {"swap": {"content_levels": [1, 9]}}})
    with pytest.raises(ConfigError, match="eval.swap.content_levels: a list of distinct"):
        params_from_dict({"eval": {"swap": {"content_levels": [2, 2]}}})


# --------------------------------------------------------------------------- eval_probe
def test_word_examples_use_only_frames_that_ended():
    words = [{"word": "The", "start": 0.0, "end": 0.05}, {"word": "cat", "start": 0.1, "end": 0.25},
             {"word": "sat", "start": 0.3, "end": 0.48}, {"word": "down", "start": 0.5, "end": 0.7}]
    pos, tgt, skipped = P.word_examples(words, n_frames=9)
    # "The" ends inside frame 0 (no whole frame yet): skipped; "cat" ends at 0.25 -> frames 0..2
    # (frame 2 ends at 0.24); "sat" at 0.48 -> frames 0..5 (frame 5 ends exactly at 0.48)
    assert skipped == 1 and pos == [2, 5] and tgt == ["sat", "down"]


def test_probe_state_at_t_ignores_later_codes():
    probe = P.Probe(levels=2, codebook_size=16, dim=8, vocab=5).eval()
    codes = torch.randint(0, 16, (1, 2, 10))
    later = codes.clone()
    later[..., 6:] = torch.randint(0, 16, (1, 2, 4))
    rows, cols = torch.zeros(10, dtype=torch.long), torch.arange(10)  # every frame of the one utterance
    with torch.no_grad():
        a, b = probe(codes, rows, cols), probe(later, rows, cols)
    assert a.shape == (10, 5)
    torch.testing.assert_close(a[:6], b[:6])
    assert not torch.allclose(a[6:], b[6:])


def test_early_stopping_keeps_the_best_valid_step_and_stops_after_patience():
    stopper = P.EarlyStopping(patience=2)
    seen = [(step, stopper.update(step, score), stopper.stop)
            for step, score in ((25, 0.10), (50, 0.20), (75, 0.20), (100, 0.15))]
    # a tie is not a new best; two scores without one stop it
    assert seen == [(25, True, False), (50, True, False), (75, False, False), (100, False, True)]
    assert (stopper.best, stopper.best_step) == (0.20, 50)


def test_probe_reads_test_once_with_the_state_valid_selected(monkeypatch):
    """The test split is scored once, by the state of the best valid step (not the last one)."""
    rng = np.random.default_rng(0)
    utts = [P.Utterance(rng.integers(0, 8, (1, 6)), np.array([2, 4]), ["a", "b"]) for _ in range(6)]
    train, valid, test = utts[:2], utts[2:4], utts[4:]
    valid_scores = iter([0.3, 0.5, 0.4, 0.2, 0.1])
    seen = []  # (split, fingerprint of the probe's weights when scored)

    def fake_top1(probe, split, levels, vocab, batch_size):
        seen.append(("valid" if split is valid else "test", float(probe.head.bias.detach().sum())))
        return next(valid_scores) if split is valid else 0.0

    monkeypatch.setattr(P, "top1", fake_top1)
    cfg = EvalProbeConfig(steps=100, eval_every=2, patience=2, batch_size=2, dim=4, lr=0.1)
    r = P.train_probe(train, valid, test, [0], 8, {"a": 1, "b": 2}, cfg, seed=0)
    assert [split for split, _ in seen] == ["valid"] * 4 + ["test"]  # stopped 2 scores after the best
    assert (r["selected_step"], r["steps_run"], r["valid_top1"]) == (4, 8, 0.5)
    at_step = {2 * (i + 1): fp for i, (_, fp) in enumerate(seen[:4])}
    assert seen[-1][1] == pytest.approx(at_step[4]) and at_step[4] != pytest.approx(at_step[8])


def test_probe_stage(eval_params, prepared, codec_path):
    m = P.run_probe(eval_params.eval.probe, "embedded", eval_params.seed, str(prepared / "corpus"), str(codec_path))
    assert set(m["accuracy"]) == {"cb0", "cb1", "cb0_1", "cb2_8", "all"}
    assert m["accuracy"]["cb2_8"]["levels"] == list(range(2, 9))
    for r in m["accuracy"].values():
        assert 0 <= r["top1"] <= 1 and 0 <= r["valid_top1"] <= 1
        assert 0 < r["selected_step"] <= r["steps_run"] <= eval_params.eval.probe.steps
    assert m["examples"]["train"] > 0 and m["examples"]["valid"] > 0 and m["examples"]["test"] > 0
    assert 0 < m["majority_baseline"] <= 1


# --------------------------------------------------------------------------- eval_reasoning
@pytest.fixture(scope="module")
def reasoning_models(eval_params, tmp_path_factory):
    from semantic_bridge.models.embedded import build_tiny_htsat, build_tiny_mimi, build_tiny_smollm2

    root = tmp_path_factory.mktemp("reasoning_models")
    return {"lm": build_tiny_smollm2(root / "lm", 0), "mimi": build_tiny_mimi(root / "mimi", 0),
            "htsat": build_tiny_htsat(root / "htsat", 0)}


def test_answer_tokens_are_the_only_supervised_ones(reasoning_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from semantic_bridge.base.evalsets import QaItem

    tok = AutoTokenizer.from_pretrained(reasoning_models["lm"])
    lm = AutoModelForCausalLM.from_pretrained(reasoning_models["lm"])
    item = QaItem("a.wav", "b.wav", "Which clip is louder?", "first", "louder")
    (ex,) = R._examples([item], tok)
    feats = {"a.wav": torch.randn(4, 6), "b.wav": torch.randn(3, 6)}
    model = R.QaModel(lm, R.make_mapper(6, lm.config.hidden_size), feats)
    x, labels = model.embed(ex, with_answer=True, with_prefix=True)
    n_answer = len(ex.answer)
    assert labels[-n_answer:].tolist() == ex.answer and ex.answer[-1] == tok.eos_token_id
    assert (labels[:-n_answer] == R.IGNORE).all()
    assert x.shape[0] == len(ex.prefix) + sum(len(p) if not isinstance(p, str) else len(feats[p])
                                               for p in ex.parts) + n_answer
    loss = model.loss([ex, ex])
    loss.backward()
    assert all(p.grad is not None for p in model.mapper.parameters())
    assert all(p.grad is None for p in lm.parameters())


def test_the_cached_question_prefix_gives_the_full_sequence_loss(reasoning_models):
    """Training runs the LM after cached question prefixes (left-padded to one length, positions
    continued per example): the loss and the mapper's gradient equal the whole sequence's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from semantic_bridge.base.evalsets import QaItem

    tok = AutoTokenizer.from_pretrained(reasoning_models["lm"])
    lm = AutoModelForCausalLM.from_pretrained(reasoning_models["lm"]).eval()
    torch.manual_seed(0)
    feats = {"a": torch.randn(2, 6), "b": torch.randn(7, 6), "c": torch.randn(4, 6)}
    items = [QaItem("a", "", "Is it speech?", "yes", "t"), QaItem("b", "c", "Which one is the longer clip of the two?", "first", "t"),
             QaItem("c", "a", "Which is louder?", "second", "t")]
    examples = R._examples(items, tok)
    assert len({len(ex.prefix) for ex in examples}) == 3  # different prefix lengths: padding is exercised
    model = R.QaModel(lm, R.make_mapper(6, lm.config.hidden_size), feats)
    grads = []
    for loss_fn in (model.loss, model.full_loss):
        model.mapper.zero_grad()
        loss = loss_fn(examples)
        loss.backward()
        grads.append((float(loss.detach()), [p.grad.clone() for p in model.mapper.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_pool_tokens_keeps_the_clip_length_visible():
    frames = np.arange(26, dtype=np.float32)[:, None].repeat(3, 1)  # 26 frames at 12.5 Hz
    pooled = R.pool_tokens(frames, 12.5, 0.8)  # 10 frames per token
    assert pooled.shape == (3, 3) and pooled[0, 0] == 4.5 and pooled[2, 0] == 22.5
    assert R.pool_tokens(frames[:1], None, 0.8).shape == (1, 3)  # one clip vector stays one


@pytest.mark.parametrize("encoder", ["htsat", "mimi_semantic", "mimi_full", "bridge"])
def test_reasoning_stage_for_every_encoder(encoder, eval_params, prepared, codec_path, reasoning_models, tmp_path):
    params = eval_params
    r = params.eval.reasoning
    r.lm = str(reasoning_models["lm"])
    r.encoders = {"htsat": str(reasoning_models["htsat"]), "mimi_semantic": str(reasoning_models["mimi"]),
                  "mimi_full": str(reasoning_models["mimi"]), "bridge": str(codec_path)}
    m = R.run_reasoning(r, "embedded", params.seed, params.data.sample_rate, encoder, str(prepared), str(tmp_path / "loss.tsv"))
    test = read_reasonaqa(prepared / "qa" / "test.json")
    assert m["questions"]["test"] == len(test)
    assert any(it.filepath2 for it in test)  # two-clip questions are in the run
    assert sum(t["questions"] for t in m["per_type"].values()) == len(test)
    assert 0 <= m["accuracy"] <= 1 and np.isfinite(m["final_train_loss"])
    assert 0 <= m["train_accuracy"] <= 1 and 0 < m["train_majority_baseline"] <= 1
    n_train = len(read_reasonaqa(prepared / "qa" / "train.json"))
    assert m["questions"]["train_answered"] == (min(r.train_eval_questions, n_train) or n_train)
    assert m["models"]["encoder"]["features"]["tokens_per_clip_max"] >= 1
    if encoder == "htsat":  # framewise by default: a sequence, as the codecs give
        assert m["models"]["encoder"]["features"]["kind"] == "framewise"
        assert m["models"]["encoder"]["features"]["frame_rate_hz"] == pytest.approx(32 / 7)
    assert m["models"]["encoder"]["name"] == encoder and m["hyperparameters"]["steps"] == r.steps
    expected_dim = {"htsat": 256, "bridge": params.codec.hidden_size}.get(encoder, 64)  # tiny HTSAT: 32 x 2^3
    assert m["models"]["encoder"]["dim"] == expected_dim
    assert len((tmp_path / "loss.tsv").read_text().splitlines()) == r.steps + 1


def test_mimi_encoders_read_the_semantic_codebook_or_all(reasoning_models):
    from semantic_bridge.evaluate.encoders import make_encoder

    audio = tone(1.0, 24000)
    sem = make_encoder("mimi_semantic", str(reasoning_models["mimi"]))
    full = make_encoder("mimi_full", str(reasoning_models["mimi"]))
    assert (sem.levels, full.levels) == (1, 8)
    a, b = sem(audio, 24000), full(audio, 24000)
    assert a.shape == b.shape == (13, 64) and not np.allclose(a, b)


def test_htsat_framewise_frames_follow_the_input_length(reasoning_models):
    """msclap's 7 s window becomes a 32-frame grid (8 merged tokens x freq_ratio 4): 4.57 Hz.
    A clip keeps ceil(32 x seconds / 7) frames, the ones that cover it and not its repeats."""
    from semantic_bridge.evaluate.encoders import htsat_frames, make_encoder

    frames = make_encoder("htsat", str(reasoning_models["htsat"]))
    assert frames.grid_frames() == 32 and frames.frame_rate == pytest.approx(32 / 7)
    for seconds, expected in ((0.5, 3), (2.0, 10), (3.5, 16), (7.0, 32), (9.0, 32)):
        assert htsat_frames(seconds, 32) == expected
        audio = tone(seconds, 24000)
        assert frames(audio, 24000).shape == (expected, frames.dim)
    first = frames(tone(2.0, 24000), 24000)  # the hook's grid is per call, not accumulated
    assert np.array_equal(first, frames(tone(2.0, 24000), 24000))
    clip = make_encoder("htsat", str(reasoning_models["htsat"]), "clip")
    assert clip.frame_rate is None and clip(tone(2.0, 24000), 24000).shape == (1, frames.dim)


def test_htsat_shapes_tiny_and_clap_2023(tmp_path):
    """The embedded HTSAT's declared Swin shape is what loads (256-d, msclap's 32-frame grid);
    without a shape file a folder is read as CLAP 2023 (768-d, 33 M parameters), and a tiny
    checkpoint without its shape file is a one-line ConfigError, not a size-mismatch trace."""
    from semantic_bridge.base.errors import ConfigError
    from semantic_bridge.evaluate.encoders import HtsatEncoder
    from semantic_bridge.models.embedded import TINY_HTSAT, build_tiny_htsat
    from semantic_bridge.models.htsat import CLAP_2023, SHAPE_FILE, build_htsat, htsat_dim

    assert (htsat_dim(TINY_HTSAT), htsat_dim(None), htsat_dim(CLAP_2023)) == (256, 768, 768)
    assert 33e6 < sum(p.numel() for p in build_htsat().parameters()) < 34e6
    tiny = build_tiny_htsat(tmp_path / "tiny", 0)
    enc = HtsatEncoder(str(tiny))
    assert enc.dim == 256 and enc.grid_frames() == 32
    assert enc(tone(1.0, 24000), 24000).shape == (5, 256)
    (tiny / SHAPE_FILE).unlink()
    with pytest.raises(ConfigError, match="does not fit the HTSAT shape CLAP 2023"):
        HtsatEncoder(str(tiny))


def test_batched_left_padded_answers_equal_one_by_one(reasoning_models):
    """Greedy answers of a left-padded batch of different-length prompts (one and two clips) are
    the answers each prompt gets alone: padding never leaks into the generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from semantic_bridge.base.evalsets import QaItem

    tok = AutoTokenizer.from_pretrained(reasoning_models["lm"])
    lm = AutoModelForCausalLM.from_pretrained(reasoning_models["lm"]).eval()
    torch.manual_seed(0)
    feats = {"a": torch.randn(2, 6), "b": torch.randn(9, 6), "c": torch.randn(5, 6)}
    items = [QaItem("a", "", "Is it speech?", "yes", "t"), QaItem("b", "c", "Which is longer?", "first", "t"),
             QaItem("c", "", "How many words are spoken in this clip?", "7", "t")]
    examples = R._examples(items, tok)
    model = R.QaModel(lm, R.make_mapper(6, lm.config.hidden_size), feats)
    eos = tok.eos_token_id
    batched = model.answer(examples, 5, eos, eos)
    alone = [model.answer([ex], 5, eos, eos)[0] for ex in examples]

    def cut(ids):
        return ids[: ids.index(eos)] if eos in ids else ids

    assert [cut(a) for a in batched] == [cut(a) for a in alone]


@pytest.mark.slow
def test_nemo_speaker_backend_on_a_tiny_model(tmp_path):
    """A tiny EncDecSpeakerLabelModel (TitaNet's model class) from a config, saved as .nemo and
    loaded through eval.swap.speaker_model."""
    from nemo.collections.asr.models import EncDecSpeakerLabelModel
    from omegaconf import OmegaConf

    from semantic_bridge.config import EvalSwapConfig
    from semantic_bridge.evaluate.speaker import make_speaker_model

    cfg = OmegaConf.create({
        **tiny_nemo_frontend(kernel=3, stride=1),
        "decoder": {"_target_": "nemo.collections.asr.modules.SpeakerDecoder", "feat_in": 48,
                    "num_classes": 4, "pool_mode": "attention", "emb_sizes": 16},
        "loss": {"_target_": "nemo.collections.asr.losses.angularloss.AngularSoftmaxLoss"},
    })
    EncDecSpeakerLabelModel(cfg=cfg).save_to(str(tmp_path / "spk.nemo"))
    spk = make_speaker_model(EvalSwapConfig(speaker_backend="nemo", speaker_model=str(tmp_path / "spk.nemo")))
    assert spk.name == "nemo" and spk.rate == 16000
    a = spk.embed(tone(1.0, 24000), 24000)
    assert a.shape == (16,) and np.isfinite(a).all()
    np.testing.assert_allclose(spk.embed(tone(1.0, 24000), 24000), a, rtol=1e-5, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="eval.swap.speaker_model"):
        make_speaker_model(EvalSwapConfig(speaker_backend="nemo", speaker_model=str(tmp_path / "no.nemo")))


class _NotATensor:
    """Any pickled object besides tensors and containers: what weights_only=True refuses."""


def test_an_htsat_checkpoint_with_objects_is_refused(tmp_path):
    from semantic_bridge.base.errors import ConfigError
    from semantic_bridge.evaluate.encoders import HtsatEncoder

    torch.save({"model": {"audio_encoder.x": torch.zeros(1)}, "extra": _NotATensor()}, tmp_path / "CLAP.pth")
    with pytest.raises(ConfigError, match="refused"):
        HtsatEncoder(str(tmp_path))
