"""push_to_hub and from_pretrained through huggingface_hub's real client, against a stand-in
Hub served on 127.0.0.1 by the test (tests/hub_server.py): create, commit, branch, pull
request, stale-file deletion, download online, and offline loading from the cache."""

from __future__ import annotations

import json
import socket
import sys

import huggingface_hub.utils
import pytest
import torch
import yaml
from huggingface_hub import constants

from learnedloss import LearnedLoss, LossConfig
from learnedloss.card import DOCS_BASE_URL, INSTALL_COMMAND
from tests.hub_server import HubServer

_connect = socket.socket.connect
_create_connection = socket.create_connection
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _loopback_only(address) -> None:
    if not (isinstance(address, tuple) and address[0] in _LOOPBACK):
        raise AssertionError(f"a test tried to open a connection beyond 127.0.0.1: {address}")


@pytest.fixture
def hub(monkeypatch):
    """A stand-in Hub on 127.0.0.1, with huggingface_hub pointed at it and online.

    Sockets stay blocked for every address but the loopback one.
    """

    def connect(sock, address):
        _loopback_only(address)
        return _connect(sock, address)

    def create_connection(address, *args, **kwargs):
        _loopback_only(address)
        return _create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    with HubServer() as server:
        # huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, at import time, into
        # `constants`, and some releases copy the URL template into other modules too
        # (0.x: file_download.HUGGINGFACE_CO_URL_TEMPLATE): patch every copy.
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        values = {
            "ENDPOINT": server.url,
            "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        }
        for name, module in list(sys.modules.items()):
            if name == "huggingface_hub" or name.startswith("huggingface_hub."):
                for attribute, value in values.items():
                    if isinstance(getattr(module, attribute, None), str):
                        monkeypatch.setattr(module, attribute, value)
        set_offline(monkeypatch, False)
        yield server
    reset_http_sessions()  # later tests must not reuse an online session


def reset_http_sessions() -> None:
    """huggingface_hub 0.x caches HTTP sessions built for the offline flag of their time."""
    reset = getattr(huggingface_hub.utils, "reset_sessions", None)
    if reset is not None:
        reset()


def set_offline(monkeypatch, offline: bool) -> None:
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    reset_http_sessions()


def other_loss(seed: int = 1, activation: str = "relu") -> LearnedLoss:
    torch.manual_seed(seed)
    return LearnedLoss(LossConfig(hidden_sizes=(8, 8), activation=activation, bias=True))


def same_function(a: LearnedLoss, b: LearnedLoss) -> bool:
    torch.manual_seed(123)
    x, y = torch.randn(50), torch.randn(50)
    return a.config == b.config and torch.equal(a(x, y), b(x, y))


def loaded_from_files(files: dict[str, bytes], tmp_path) -> LearnedLoss:
    directory = tmp_path / "downloaded"
    directory.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors", "README.md"):
        (directory / name).write_bytes(files[name])
    return LearnedLoss.from_pretrained(directory)


def test_push_creates_the_repo_and_commits_the_checkpoint(hub, small_loss, tmp_path):
    small_loss.metadata = {"description": "Pushed in a test. See docs/sine.md."}
    info = small_loss.push_to_hub(
        "me/my-loss", token="hf_test", private=True, commit_message="first"
    )
    repo = hub.repos["me/my-loss"]
    assert repo.private
    assert info.oid == repo.refs["main"] and info.commit_message == "first"
    assert len(repo.commits) == 2  # the repo's initial commit and ours: one commit
    requests = zip(hub.requests, hub.tokens, strict=True)
    sent = [token for (_, path), token in requests if path.startswith("/api/models")]
    assert sent and all(token == "Bearer hf_test" for token in sent)
    files = hub.files("me/my-loss")
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert same_function(loaded_from_files(files, tmp_path), small_loss)
    assert json.loads(files["config.json"])["metadata"]["description"].startswith("Pushed")

    card = files["README.md"].decode()
    assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "learnedloss"
    assert 'LearnedLoss.from_pretrained("me/my-loss")' in card
    assert INSTALL_COMMAND in card
    # Links work on the Hub: absolute, never a path into a source checkout.
    assert f"[docs/sine.md]({DOCS_BASE_URL}/sine/)" in card
    assert "](docs/" not in card and DOCS_BASE_URL.startswith("https://")
    assert ("POST", "/api/validate-yaml") in hub.requests  # the Hub checked the card's YAML


def test_pushing_again_replaces_the_checkpoint_and_deletes_stale_files(hub, small_loss, tmp_path):
    small_loss.push_to_hub("me/my-loss")
    repo = hub.repos["me/my-loss"]
    # An older upload left other files behind: pickled weights and a note.
    stale = hub.files("me/my-loss") | {"pytorch_model.bin": b"old", "notes/a.txt": b"x"}
    repo.refs["main"] = hub._new_commit(repo, stale)

    newer = other_loss()
    newer.push_to_hub("me/my-loss")
    files = hub.files("me/my-loss")
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert same_function(loaded_from_files(files, tmp_path), newer)

    repo.refs["main"] = hub._new_commit(repo, files | {"notes/a.txt": b"kept"})
    small_loss.push_to_hub("me/my-loss", delete_stale=False)
    assert hub.files("me/my-loss")["notes/a.txt"] == b"kept"


def test_push_to_a_branch_that_does_not_exist_yet_creates_it(hub, small_loss):
    small_loss.push_to_hub("me/my-loss", revision="experiment")
    assert ("POST", "/api/models/me/my-loss/branch/experiment") in hub.requests
    assert sorted(hub.files("me/my-loss", "main")) == [".gitattributes"]  # main untouched
    loaded = LearnedLoss.from_pretrained("me/my-loss", revision="experiment")
    assert same_function(loaded, small_loss)

    newer = other_loss()
    newer.push_to_hub("me/my-loss", revision="experiment")  # the branch exists now
    assert same_function(LearnedLoss.from_pretrained("me/my-loss", revision="experiment"), newer)


def test_push_as_a_pull_request_leaves_main_alone(hub, small_loss):
    small_loss.push_to_hub("me/my-loss")
    proposal = other_loss(activation="tanh")
    info = proposal.push_to_hub("me/my-loss", create_pr=True, commit_description="Try tanh")
    assert info.pr_url.endswith("/me/my-loss/discussions/1")
    assert info.pr_revision == "refs/pr/1"
    assert same_function(LearnedLoss.from_pretrained("me/my-loss"), small_loss)
    in_pr = LearnedLoss.from_pretrained("me/my-loss", revision=info.pr_revision)
    assert same_function(in_pr, proposal)


def test_save_pretrained_can_push(hub, small_loss, tmp_path):
    directory = small_loss.save_pretrained(
        tmp_path / "my-loss", push_to_hub=True, repo_id="me/my-loss", token="hf_test"
    )
    assert (directory / "model.safetensors").is_file()
    files = hub.files("me/my-loss")
    assert files["model.safetensors"] == (directory / "model.safetensors").read_bytes()
    assert 'from_pretrained("me/my-loss")' in files["README.md"].decode()
    with pytest.raises(TypeError, match=r"arguments of push_to_hub; pass push_to_hub=True"):
        small_loss.save_pretrained(tmp_path / "other", token="hf_test")


def test_from_pretrained_online_then_offline_from_the_cache(hub, small_loss, monkeypatch):
    small_loss.push_to_hub("me/my-loss")
    online = LearnedLoss.from_pretrained("me/my-loss")
    assert same_function(online, small_loss)
    assert not any(p.requires_grad for p in online.parameters())
    # config.json is resolved at the branch, the other files at the commit it resolved to,
    # so a push between the downloads cannot mix two checkpoints.
    commit = hub.repos["me/my-loss"].refs["main"]
    resolved = [path for method, path in hub.requests if "/resolve/" in path]
    assert "/me/my-loss/resolve/main/config.json" in resolved
    assert f"/me/my-loss/resolve/{commit}/model.safetensors" in resolved

    set_offline(monkeypatch, True)
    requests_before = len(hub.requests)
    offline = LearnedLoss.from_pretrained("me/my-loss")
    assert same_function(offline, small_loss)
    local = LearnedLoss.from_pretrained("me/my-loss", local_files_only=True)
    assert same_function(local, small_loss)
    assert len(hub.requests) == requests_before  # nothing went to the server


def test_missing_repo_revision_or_config_online_are_clear_errors(hub, small_loss):
    from learnedloss import ConfigError

    with pytest.raises(FileNotFoundError, match=r"not a Hub repo you can read"):
        LearnedLoss.from_pretrained("me/absent")
    small_loss.push_to_hub("me/my-loss")
    with pytest.raises(FileNotFoundError, match=r"has no revision 'nope'"):
        LearnedLoss.from_pretrained("me/my-loss", revision="nope")
    repo = hub.repos["me/my-loss"]
    repo.refs["main"] = hub._new_commit(repo, {".gitattributes": b""})
    with pytest.raises(ConfigError, match=r"has no 'config.json'"):
        LearnedLoss.from_pretrained("me/my-loss")
