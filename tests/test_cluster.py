"""Warren on a three-member LXD cluster (tests/cluster builds it on this
machine, in network namespaces): the harness itself, Warren's LXD backend
over HTTPS with the cluster certificate pinned, setup on a cluster, and
placement. One file: the cluster is one per host, so its tests run in one
worker, in order, and the last one tears it down and checks nothing is left."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from cluster.cluster import BRIDGE, Cluster, unique_name

from app import firewall, hostforwards, hostroutes, lxd
from app.config import Settings
from app.errors import BackendUnavailable
from app.store import get_db
from conftest import make_app, post_form
from proxy import Proxy, curl
from support import api_token, launch, member_instance, request_instance, run_in, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.lxd]
POOL, NETWORK, ADDRESS = "wcpool", "wcnet0", "10.79.0.1/24"  # beside the harness's own 10.78


@pytest.fixture(scope="module")
def cluster():
    built = Cluster(offline_threshold=11)  # LXD's minimum: offline tests wait less
    built.down()  # a fresh cluster: nothing an interrupted run left (a bridge holding the address)
    built.up()
    built.import_image("busybox")
    yield built
    built.down()
    for remove in (firewall.remove_dhcp_guard, firewall.remove_mac_guard, firewall.remove_nd_guard):
        remove(NETWORK)  # the host-side guards Warren's setup and passes put on the bridge's name
    firewall.ensure_forward_guard(NETWORK, False)


def cluster_settings(cluster) -> dict:
    return {"lxd_url": cluster.urls["m1"], "lxd_cert": str(cluster.client_cert),
            "lxd_key": str(cluster.client_key), "lxd_server_cert": str(cluster.cluster_cert),
            "lxd_storage_pool": POOL, "lxd_pool_size": "2GiB", "lxd_network": NETWORK,
            "network_address": ADDRESS, "cluster_vxlan_interface": "eth0", "cluster_vxlan_id": "79"}


@pytest.fixture
def app(tmp_path, cluster):
    """A scratch Warren driving the cluster over HTTPS, on its own profiles
    (one of them placed on the cluster group `big`)."""
    made = make_app(tmp_path, own_profiles=True, backup_dir=str(tmp_path / "backups"),
                    **cluster_settings(cluster))
    profile = yaml.safe_load((tmp_path / "profiles" / "small.yaml").read_text())
    profile.update(description="Small, on the big box", placement="@big", images=["busybox"])
    (tmp_path / "profiles" / "onbig.yaml").write_text(yaml.safe_dump(profile))
    profile.update(description="Small, on a group with no members", placement="@nowhere")
    (tmp_path / "profiles" / "nowhere.yaml").write_text(yaml.safe_dump(profile))
    return made


@pytest.fixture
def set_up(app, cluster):
    """Warren's own setup run on the cluster, and the group `big` (m3)."""
    result = app.test_cli_runner().invoke(args=["host", "setup-lxd"])
    assert result.exit_code == 0, result.output
    if "big" not in cluster.lxc("m1", "cluster", "group", "list", "-f", "csv"):
        cluster.lxc("m1", "cluster", "group", "create", "big")
        cluster.lxc("m1", "cluster", "group", "assign", "m3", "default,big")
    return result.output


def cluster_daemons(base: Path) -> list[int]:
    """Live lxd processes whose LXD_DIR is under the harness's folder."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().strip() != "lxd":
                continue
            environ = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(f"LXD_DIR={base}".encode()) for v in environ):
            found.append(int(entry.name))
    return found


def test_three_members_online(cluster):
    assert cluster.member_status() == {"m1": "Online", "m2": "Online", "m3": "Online"}
    client = cluster.client("m2")
    assert client.host_info["auth"] == "trusted"
    assert sorted(m.server_name for m in client.cluster.members.all()) == ["m1", "m2", "m3"]
    assert {name: Path(path).is_socket() for name, path in cluster.sockets.items()} == \
        {"m1": True, "m2": True, "m3": True}


def test_up_reuses_a_healthy_cluster(cluster):
    pids = {name: cluster.daemon_pid(name) for name in cluster.members}
    again = Cluster().up()
    assert again.timings == {"reused": 0.0}
    assert {name: again.daemon_pid(name) for name in again.members} == pids


def test_https_client_is_pinned_to_the_cluster_certificate(cluster):
    session = cluster.session()
    assert session.trust_env is False
    session.cert = None  # no client certificate: LXD answers, untrusted
    assert session.get(cluster.urls["m3"] + "/1.0", timeout=10).json()["metadata"]["auth"] == "untrusted"
    wrong = cluster.session()
    wrong.verify = str(cluster.client_cert)  # another certificate: the pin refuses the server
    with pytest.raises(Exception, match="[Ff]ingerprint"):
        wrong.get(cluster.urls["m1"] + "/1.0", timeout=10)


def test_container_launched_with_a_target_runs_there(cluster):
    cluster.ensure_pool_and_network()
    cluster.import_image("busybox")
    client = cluster.client("m1")
    name = unique_name("wclt")
    instance = client.instances.create({
        "name": name, "source": {"type": "image", "alias": "busybox"},
        "devices": {"root": {"type": "disk", "path": "/", "pool": "wpool"},
                    "eth0": {"type": "nic", "name": "eth0", "network": "wclbr0"}},
    }, wait=True, target="m3")
    instance.start(wait=True)
    instance = client.instances.get(name)
    assert instance.location == "m3"
    assert instance.status == "Running"
    # LXD_DIR/containers/NAME is a symlink into the pool, which is mounted in
    # the member's own mount namespace only: from here it dangles.
    assert (cluster.members["m3"].lxd_dir / "containers" / name).is_symlink()
    assert not (cluster.members["m1"].lxd_dir / "containers" / name).is_symlink()
    # Left running on purpose: down() must clean up a member's live instances too.


def test_a_killed_member_goes_offline_and_comes_back(cluster):
    cluster.kill_member("m2", wait_offline=True, timeout=60)
    assert cluster.daemon_pid("m2") is None
    assert cluster.member_status() == {"m1": "Online", "m2": "Offline", "m3": "Online"}
    cluster.start_member("m2")
    assert cluster.member_status()["m2"] == "Online"
    assert cluster.client("m2").host_info["environment"]["server_name"] == "m2"



def test_setup_creates_the_pool_and_bridge_on_every_member_then_globally(app, cluster, set_up):
    assert "LXD cluster: m1, m2, m3" in set_up
    client = cluster.client("m2")
    for kind, name in (("storage-pools", POOL), ("networks", NETWORK)):
        record = getattr(client.api, kind.replace("-", "_"))[name].get().json()["metadata"]
        assert record["status"] == "Created", (kind, record)
        assert sorted(record["locations"]) == ["m1", "m2", "m3"], (kind, record)
    # One segment: the members' bridges joined by a multicast VXLAN, DHCP answered by each instance's own member.
    config = client.networks.get(NETWORK).config
    assert {key: config.get(key) for key in ("tunnel.vx.protocol", "tunnel.vx.group", "tunnel.vx.id",
                                             "tunnel.vx.interface", "raw.dnsmasq")} == \
        {"tunnel.vx.protocol": "vxlan", "tunnel.vx.group": "239.0.0.1", "tunnel.vx.id": "79",
         "tunnel.vx.interface": "eth0", "raw.dnsmasq": "dhcp-ignore=tag:!known"}
    assert "one segment across the members (VXLAN 79, group 239.0.0.1, over eth0)" in set_up
    for member in ("m1", "m2", "m3"):
        links = subprocess.run(["ip", "netns", "exec", f"wcl-{member}", "ip", "-d", "link", "show", f"{NETWORK}-vx"],
                    capture_output=True, text=True, check=True).stdout
        assert f"master {NETWORK}" in links and "vxlan id 79 group 239.0.0.1 dev eth0" in links, links
    again = app.test_cli_runner().invoke(args=["host", "setup-lxd"])
    assert f"storage pool {POOL}: present" in again.output and f"network {NETWORK}: present" in again.output


def test_setup_refuses_ipv6_on_a_cluster_before_changing_anything(app, cluster):
    app.config["WARREN"] = Settings(app.config["WARREN"], network_ipv6_prefix="fd42:79:0:1::/64",
                                    lxd_network="wcnet9", lxd_storage_pool="wcpool9")
    refused = app.test_cli_runner().invoke(args=["host", "setup-lxd"])
    assert refused.exit_code == 1
    assert "IPv6 on an LXD cluster is not supported yet" in refused.output
    assert "WARREN_NETWORK_IPV6_PREFIX" in refused.output and "Nothing was changed" in refused.output
    client = cluster.client("m1")
    assert "wcnet9" not in [network.name for network in client.networks.all()]
    assert "wcpool9" not in [pool.name for pool in client.storage_pools.all()]


def host_fetches(address: str, path: str = "/who", port: int = 8080) -> str:
    """What an instance's web server answers this host (retried while the
    first packets find their way)."""
    answers = []

    def fetched():
        try:
            answers.append(requests.get(f"http://{address}:{port}{path}", timeout=2).text)
            return True
        except requests.RequestException:
            return False
    wait_until(fetched, timeout=20, message=f"http://{address}:{port}{path} answering this host")
    return answers[-1]


def routes_to(address: str) -> list[str]:
    """The gateways of Warren's routes (app/hostroutes.py) to an address."""
    listed = subprocess.run(["ip", "-j", "-4", "route", "show", "proto", hostroutes.PROTOCOL, address],
                            capture_output=True, text=True, check=True).stdout
    return [route["gateway"] for route in json.loads(listed or "[]")]


def serve_name(instance, name: str) -> None:
    """busybox httpd on port 8080 in an instance, serving /who: its name."""
    run_in(instance, "sh", "-c", f"mkdir -p /srv && echo {name} > /srv/who && httpd -p 8080 -h /srv")


def test_instances_on_different_members_reach_each_other_and_the_host_reaches_both(
        app, cluster, set_up, worker, members, tmp_path, dig):
    settings = app.config["WARREN"]
    first = on_member(app, cluster, "m1", tmp_path / "profiles", "first")
    member = members()
    _, near = launch(member, name="near", profile=first, image="busybox")
    _, far = launch(member, name="far", profile="onbig", image="busybox")
    near_instance, far_instance = (member_instance(settings, member, name) for name in ("near", "far"))
    assert (near_instance.location, far_instance.location) == ("m1", "m3")
    # Each took the address Warren gave it from its own member's DHCP (no NAK from the others).
    assert run_in(far_instance, "ip", "-4", "-o", "addr", "show", "eth0").split()[3] == f"{far['ipv4']}/24"
    assert dig(far["fqdn"]) == [far["ipv4"]]
    # This host is no member: it reaches each instance through the member it runs on.
    assert routes_to(far["ipv4"]) == ["10.77.0.13"] and routes_to(near["ipv4"]) == ["10.77.0.11"]
    serve_name(far_instance, "far")
    assert host_fetches(far["ipv4"]).strip() == "far"
    # From the instance on m1, by the address Warren assigned, over the segment.
    answer = run_in(near_instance, "sh", "-c", f"printf 'GET /who HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {far['ipv4']} 8080")
    assert answer.startswith("HTTP/1.1 200") and answer.endswith("\nfar"), answer
    assert "0% packet loss" in run_in(near_instance, "ping", "-c", "2", "-s", "1300", far["ipv4"])
    serve_name(near_instance, "near")
    assert host_fetches(near["ipv4"]).strip() == "near"


def test_the_backend_speaks_https_with_the_cluster_certificate_pinned(app, cluster, monkeypatch, tmp_path):
    backend = lxd.backend(app.config["WARREN"])
    assert backend.url.startswith("https://10.77.0.11:")
    assert backend.clustered()
    assert [(member.name, member.status) for member in backend.members()] == \
        [("m1", "Online"), ("m2", "Online"), ("m3", "Online")]
    # A CA bundle in the environment would replace `verify` if the session trusted it.
    bogus = tmp_path / "bundle.pem"
    bogus.write_text("not a certificate\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    fresh = lxd.Backend(url=backend.url, cert=backend.cert, key=backend.key,
                        server_cert=backend.server_cert)
    assert fresh.client().host_info["environment"]["server_clustered"] is True
    # Another certificate pinned: the cluster is refused.
    wrong = lxd.Backend(url=backend.url, cert=backend.cert, key=backend.key,
                        server_cert=str(cluster.client_cert))
    with pytest.raises(BackendUnavailable):
        wrong.client()


def test_a_profile_placed_on_a_group_lands_on_its_member_and_pages_say_where(
        app, cluster, set_up, worker, members, admin):
    member = members()
    _, progress = launch(member, name="big1", profile="onbig", image="busybox")
    instance = member_instance(app.config["WARREN"], member, "big1")
    assert instance.location == "m3"
    with app.app_context():
        row = get_db()["instances"].rows_where("name = ?", ["big1"]).__next__()
    assert row["location"] == "m3"
    page = member.get(f"/instances/{row['id']}").get_data(as_text=True)
    assert '<dd id="location">m3</dd>' in page
    headers = api_token(app, member.username)
    assert app.test_client().get(f"/api/v1/instances/{row['id']}",
                                 headers=headers).get_json()["location"] == "m3"
    assert '<td class="location">m3</td>' in admin.get(f"/admin/users/{member.username}").get_data(as_text=True)
    # Without a group LXD places it (the member with the fewest instances) and Warren records where.
    launch(member, name="any1", profile="small", image="busybox")
    placed = member_instance(app.config["WARREN"], member, "any1").location
    with app.app_context():
        assert get_db()["instances"].rows_where("name = ?", ["any1"]).__next__()["location"] == placed
    assert placed in ("m1", "m2", "m3")


def test_a_group_without_members_is_refused_with_the_reason(app, cluster, set_up, members):
    member = members()
    response = request_instance(member, name="nope", profile="nowhere", image="busybox", expect=422)
    assert "cluster group @nowhere, which has no members" in response.get_data(as_text=True)
    with app.app_context():
        assert get_db()["instances"].count == 0



def on_member(app, cluster, member, tmp_path_profiles, group):
    """A profile that places instances on one member (through a group of its own)."""
    if group not in cluster.lxc("m1", "cluster", "group", "list", "-f", "csv"):
        cluster.lxc("m1", "cluster", "group", "create", group)
    groups = cluster.client("m1").api.cluster.members[member].get().json()["metadata"]["groups"]
    if group not in groups:
        cluster.lxc("m1", "cluster", "group", "assign", member, ",".join(groups + [group]))
    profile = yaml.safe_load((tmp_path_profiles / "small.yaml").read_text())
    profile.update(description=f"Small, on {member}", placement=f"@{group}", images=["busybox"])
    (tmp_path_profiles / f"on{member}.yaml").write_text(yaml.safe_dump(profile))
    lxd.forget_cached()  # the groups Warren read a moment ago (kept 10 s)
    return f"on{member}"


GROUPS = {"m1": "first", "m2": "two", "m3": "three"}  # a cluster group per member, for on_member


@pytest.fixture
def placed(app, cluster, members, tmp_path):
    """launch on one member: place("m3", "web") is (its member's web client,
    the instance's page, its progress), a busybox instance of a fresh member."""
    def place(where: str, name: str):
        profile = on_member(app, cluster, where, tmp_path / "profiles", GROUPS[where])
        member = members()
        location, progress = launch(member, name=name, profile=profile, image="busybox")
        return member, location, progress
    return place


def row_named(app, name):
    with app.app_context():
        return next(get_db()["instances"].rows_where("name = ?", [name]))


def maintenance_done(app, settings):
    """Run the worker's maintenance pass now (the worker may have run it
    already) and wait until no request is left open."""
    from app import maintenance
    with app.app_context():
        maintenance.advance(get_db(), settings)

    def finished():
        with app.app_context():
            return not get_db()["maintenance"].count_where("state IN ('pending', 'running')")
    wait_until(finished, timeout=180, message="the maintenance done")
    with app.app_context():
        return list(get_db()["maintenance"].rows_where(order_by="id"))


def test_evacuating_a_member_moves_its_containers_keeping_names_and_restore_brings_them_back(
        app, cluster, set_up, worker, members, admin, tmp_path, dig):
    settings = app.config["WARREN"]
    profile = on_member(app, cluster, "m2", tmp_path / "profiles", "two")
    member = members()
    made = {}
    for name in ("ev1", "ev2"):
        _, progress = launch(member, name=name, profile=profile, image="busybox")
        made[name] = progress
        assert member_instance(settings, member, name).location == "m2"
    # Something that cannot move: a container of the admin's own on m2 with a NIC on a host interface.
    stuck = unique_name("wcls")
    raw = cluster.client("m1")
    raw.instances.create({"name": stuck, "source": {"type": "image", "alias": "busybox"},
                          "devices": {"root": {"type": "disk", "path": "/", "pool": POOL},
                                      "eth0": {"type": "nic", "nictype": "bridged",
                                               "parent": NETWORK, "name": "eth0"}}},
                         wait=True, target="m2")
    raw.instances.get(stuck).start(wait=True)

    listed = app.test_cli_runner().invoke(args=["cluster", "plan", "m2"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert sorted(line.split("\t")[:2] for line in lines if line.startswith("moves")) == \
        [["moves", made["ev1"]["fqdn"]], ["moves", made["ev2"]["fqdn"]]]
    (stays,) = [line for line in lines if line.startswith("stops")]
    assert stuck in stays and "not Warren's" in stays and "host interface" in stays
    page = admin.get("/admin/cluster/m2/plan").get_data(as_text=True)
    assert made["ev1"]["fqdn"] in page and "stops here: its NIC eth0 is on a host interface" in page

    post_form(admin, "/admin/cluster/m2/plan", {}, url="/admin/cluster/m2/evacuate", expect=303)
    (done,) = maintenance_done(app, settings)
    assert (done["action"], done["state"]) == ("evacuate", "done"), done
    assert cluster.member_status()["m2"] == "Evacuated"
    for name, progress in made.items():
        moved = member_instance(settings, member, name)
        assert moved.location in ("m1", "m3") and moved.status == "Running"
        assert moved.devices["eth0"]["ipv4.address"] == progress["ipv4"]  # its address went with it
        assert row_named(app, name)["location"] == moved.location
        assert dig(progress["fqdn"]) == [progress["ipv4"]]
        assert routes_to(progress["ipv4"]) == [cluster.members[moved.location].address]
        serve_name(moved, name)  # reachable at its address from its new member
        assert host_fetches(progress["ipv4"]).strip() == name
    assert raw.instances.get(stuck).status == "Stopped" and raw.instances.get(stuck).location == "m2"
    dashboard = member.get("/").get_data(as_text=True)
    assert dashboard.count("Moved from m2 to m") == 2 and "under maintenance" in dashboard
    members_page = admin.get("/admin/cluster").get_data(as_text=True)
    assert '<td class="member-evacuated">Evacuated</td>' in members_page

    restored = app.test_cli_runner().invoke(args=["cluster", "restore", "m2"])
    assert restored.exit_code == 0, restored.output
    assert [row["state"] for row in maintenance_done(app, settings)] == ["done", "done"]
    for name in made:
        assert member_instance(settings, member, name).location == "m2"
        assert routes_to(made[name]["ipv4"]) == ["10.77.0.12"]
        assert row_named(app, name)["location"] == "m2"
    assert raw.instances.get(stuck).status == "Running"
    assert "Moved back to m2" in member.get("/").get_data(as_text=True)
    raw.instances.get(stuck).stop(force=True, wait=True)
    raw.instances.get(stuck).delete(wait=True)


def test_an_evacuation_whose_worker_died_is_finished_by_the_next_worker(
        app, cluster, set_up, worker, placed):
    from app.worker import Worker
    settings = app.config["WARREN"]
    member, _, progress = placed("m2", "cut")
    worker.stop()
    requested = app.test_cli_runner().invoke(args=["cluster", "evacuate", "m2", "--yes"])
    assert requested.exit_code == 0, requested.output
    # The worker that took the request died while LXD evacuated m2: LXD's
    # operation went on without it; the row still says "running".
    gone = subprocess.Popen(["true"])
    gone.wait()
    with app.app_context():
        db = get_db()
        (row,) = db["maintenance"].rows_where("state = 'pending'")
        db["maintenance"].update(row["id"], {"state": "running",
                                             "claimed_by": f"{os.uname().nodename}:{gone.pid}"})
    cluster.lxc("m1", "cluster", "evacuate", "m2", "--force")
    again = Worker(app).start()
    try:
        (done,) = wait_until(lambda: [r for r in maintenance_rows(app) if r["id"] == row["id"]
                                      and r["state"] in ("done", "failed")], timeout=60,
                             message="the evacuation resumed")
        assert done["state"] == "done", done
        moved_to = member_instance(settings, member, "cut").location
        assert moved_to in ("m1", "m3") and row_named(app, "cut")["location"] == moved_to
        assert routes_to(progress["ipv4"]) == [cluster.members[moved_to].address]
        assert f"Moved from m2 to {moved_to}" in member.get("/").get_data(as_text=True)
        with app.app_context():
            assert get_db()["audit"].count_where("action = 'cluster.evacuate' AND result = 'resumed'") == 1
        restored = app.test_cli_runner().invoke(args=["cluster", "restore", "m2", "--wait"])
        assert restored.exit_code == 0, restored.output
        assert member_instance(settings, member, "cut").location == "m2"
    finally:
        again.stop()


def maintenance_rows(app) -> list[dict]:
    with app.app_context():
        return list(get_db()["maintenance"].rows_where(order_by="id"))


def test_only_an_online_member_is_evacuated_and_an_unknown_one_is_named(app, cluster, set_up):
    runner = app.test_cli_runner()
    again = runner.invoke(args=["cluster", "restore", "m1"])
    assert again.exit_code == 1 and "m1 is Online: only an evacuated member can be restored" in again.output
    unknown = runner.invoke(args=["cluster", "plan", "m9"])
    assert unknown.exit_code == 1 and "No cluster member m9 (the members are: m1, m2, m3)" in unknown.output


def test_an_admin_moves_an_instance_and_it_keeps_everything(app, cluster, set_up, worker, members,
                                                             dig):
    settings = app.config["WARREN"]
    member = members()
    _, progress = launch(member, name="mover", profile="small", image="busybox")
    before = member_instance(settings, member, "mover")
    keys_before = run_in(before, "cat", "/root/.ssh/authorized_keys")
    target = "m1" if before.location != "m1" else "m2"
    moved = app.test_cli_runner().invoke(args=["cluster", "move", progress["fqdn"], target])
    assert moved.exit_code == 0, moved.output
    wait_until(lambda: row_named(app, "mover")["location"] == target, timeout=120,
               message="the move done")
    after = member_instance(settings, member, "mover")
    assert after.location == target and after.status == "Running"
    assert after.devices["eth0"]["ipv4.address"] == progress["ipv4"]
    assert after.config["user.warren.hostname"] == before.config["user.warren.hostname"]
    assert after.config["volatile.eth0.hwaddr"] == before.config["volatile.eth0.hwaddr"]
    assert run_in(after, "cat", "/root/.ssh/authorized_keys") == keys_before
    assert dig(progress["fqdn"]) == [progress["ipv4"]]
    assert routes_to(progress["ipv4"]) == [cluster.members[target].address]
    serve_name(after, "mover")
    assert host_fetches(progress["ipv4"]).strip() == "mover"
    history = member.get(f"/instances/{row_named(app, 'mover')['id']}/progress").get_json()
    assert any(f"Moved from {before.location} to {target} by an admin" in event["message"]
               for event in history["events"])
    refused = app.test_cli_runner().invoke(args=["cluster", "move", progress["fqdn"], target])
    assert refused.exit_code == 1 and f"already runs on {target}" in refused.output



def test_an_instance_on_m3_is_backed_up_and_restored_on_m3_with_its_data_and_address(
        app, cluster, set_up, worker, placed):
    # LXD 5.0.2 imports a backup on the member that receives the upload (m1,
    # Warren's URL): the restore moves it back to m3, where its group holds.
    settings = app.config["WARREN"]
    member, _, progress = placed("m3", "kept")
    row, headers, api = row_named(app, "kept"), api_token(app, member.username), app.test_client()
    run_in(member_instance(settings, member, "kept"), "sh", "-c", "echo version-one > /root/data.txt")
    assert api.post(f"/api/v1/instances/{row['id']}/backups", headers=headers).status_code == 202

    def backups():
        return api.get(f"/api/v1/instances/{row['id']}/backups", headers=headers).get_json()["items"]
    (backup,) = wait_until(lambda: [b for b in backups() if b["state"] == "done"], timeout=120,
                           message="the backup made")
    run_in(member_instance(settings, member, "kept"), "sh", "-c", "echo later > /root/data.txt")
    answer = api.post(f"/api/v1/instances/{row['id']}/backups/{backup['id']}/restore", headers=headers,
                      json={"confirm": True})
    assert answer.status_code == 202, answer.get_json()

    def restored():
        with app.app_context():
            return [event["message"] for event in get_db()["events"].rows_where(
                "instance_id = ? AND message LIKE 'Restored from the backup%'", [row["id"]])]
    wait_until(restored, timeout=180, message="the restore done")
    instance = member_instance(settings, member, "kept")
    assert instance.location == "m3" and row_named(app, "kept")["location"] == "m3"
    assert run_in(instance, "cat", "/root/data.txt") == "version-one"
    assert routes_to(progress["ipv4"]) == ["10.77.0.13"]
    serve_name(instance, "kept")
    assert host_fetches(progress["ipv4"]).strip() == "kept"


@pytest.fixture
def proxied(app, internet, tmp_path):
    """The ingress proxy on the simulated Internet's host address, for this
    test's Warren (set before the worker starts, which reads the settings)."""
    app.config["WARREN"] = Settings(app.config["WARREN"], ingress_address=internet.host_ip,
                                    ingress_dir=str(tmp_path / "ingress"))
    proxy = Proxy(app.config["WARREN"], tmp_path)
    proxy.run("start")
    yield proxy
    proxy.run("stop")


def test_a_website_on_m3_is_served_through_the_proxy_on_this_host(
        app, cluster, proxied, set_up, worker, placed, internet):
    member, location, progress = placed("m3", "site")
    instance = member_instance(app.config["WARREN"], member, "site")
    assert instance.location == "m3"
    run_in(instance, "sh", "-c", "mkdir -p /www && echo 'served from m3' > /www/index.html && "
                                 "httpd -p 80 -h /www")
    post_form(member, location, {"mode": "passthrough", "port": "443"}, url=location + "/site", expect=303)
    # A visitor on the Internet: the proxy on this host (no member) reaches the
    # instance on m3 through Warren's route, by the address Warren gave it.
    wait_until(lambda: curl(internet, f"http://{progress['fqdn']}/").stdout == "served from m3\n",
               timeout=20, message="the page through the proxy")


@pytest.fixture
def forwarded(app, internet):
    """Port forwards on the simulated Internet's host address (set before
    the worker starts); this host's forwards table is removed afterwards."""
    app.config["WARREN"] = Settings(app.config["WARREN"], forward_address=internet.host_ip)
    yield internet
    hostforwards.sync(None, ADDRESS, NETWORK, [])


def fetch_through(internet, port: int) -> str:
    """What answers http://<public address>:port/who from the Internet ("" if nothing)."""
    return internet.run("curl", "-sS", "--max-time", "3",
                        f"http://{internet.host_ip}:{port}/who").stdout.strip()


def test_a_port_forward_reaches_an_instance_on_m3_and_drift_is_repaired(
        app, cluster, forwarded, set_up, worker, placed, internet):
    from app import forwards
    member, _, progress = placed("m3", "fwd")
    instance = member_instance(app.config["WARREN"], member, "fwd")
    assert instance.location == "m3"
    serve_name(instance, "fwd")
    added = app.test_client().post(f"/api/v1/instances/{row_named(app, 'fwd')['id']}/forwards",
                                   headers=api_token(app, member.username),
                                   json={"protocol": "tcp", "instance_port": 8080})
    assert added.status_code == 201, added.get_json()
    port = added.get_json()["public_port"]
    # From the Internet, and from this host itself, through this host's forward
    # (LXD's would DNAT on one member, and m3 would answer around it).
    wait_until(lambda: fetch_through(internet, port) == "fwd", timeout=30, message="the forward")
    assert requests.get(f"http://{internet.host_ip}:{port}/who", timeout=5).text.strip() == "fwd"
    client = lxd.backend(app.config["WARREN"]).client()
    assert lxd.forward_addresses(client, NETWORK, forwards.DESCRIPTION) == []
    # Drift: the table flushed behind Warren's back is put back by the sync.
    subprocess.run(["nft", "delete", "table", "ip", hostforwards.TABLE], check=True)
    assert fetch_through(internet, port) == ""
    with app.app_context():
        repaired = forwards.sync(get_db(), app.config["WARREN"])
        assert forwards.sync(get_db(), app.config["WARREN"]) == []
    assert repaired == [f"forward {port}/tcp -> {progress['ipv4']}:8080 set"]
    assert fetch_through(internet, port) == "fwd"


def test_a_killed_member_is_shown_unreachable_its_actions_queued_clearly_and_nothing_reconciled_away(
        app, cluster, set_up, worker, placed, admin):
    from app import reconcile
    settings = app.config["WARREN"]
    member, _, progress = placed("m3", "off1")
    row = row_named(app, "off1")
    cluster.kill_member("m3", wait_offline=True)
    try:
        # LXD lists it with no config at all: reconcile must neither crash nor rebuild it.
        with app.app_context():
            actions = reconcile.reconcile(get_db(), settings)
        assert not [action for action in actions if row["lxd_name"] in action or "off1" in action], actions
        assert row_named(app, "off1")["status"] == "ready"
        assert "<td>Unreachable</td>" in member.get("/").get_data(as_text=True).replace("\n    ", "")
        assert '<td class="member-offline">Offline</td>' in admin.get("/admin/cluster").get_data(as_text=True)
        lxd.forget_cached()
        waits = "m3, the cluster member off1 runs on, is offline: the {} is queued and runs by itself when m3 is back."
        post_form(member, f"/instances/{row['id']}", {}, url=f"/instances/{row['id']}/restart")
        assert waits.format("restart") in member.get(f"/instances/{row['id']}").get_data(as_text=True)

        def told():
            with app.app_context():
                return [event["message"] for event in
                        get_db()["events"].rows_where("instance_id = ? AND step = 'restart'", [row["id"]])]
        assert wait_until(told, timeout=30, message="the restart held") == [waits.format("restart")]
        # a second wish merges into the waiting one, and the API says it waits too
        answer = app.test_client().post(f"/api/v1/instances/{row['id']}/stop",
                                        headers=api_token(app, member.username))
        assert answer.status_code == 202 and answer.get_json()["waits"] == waits.format("stop")
        with app.app_context():
            # (a scheduled backup of off1 may be held beside it: only power jobs here)
            (job,) = get_db()["jobs"].rows_where("instance_id = ? AND state != 'done' AND kind IN "
                                                 "('start', 'stop', 'restart')", [row["id"]])
        assert job["kind"] == "stop" and job["state"] == "pending"
        launch(member, name="on1", profile="small", image="busybox")  # the rest keeps working
        assert member_instance(settings, member, "on1").status == "Running"
    finally:
        cluster.start_member("m3")
    # back: the queued stop runs by itself, once, and nothing else changed
    def stop_jobs():
        with app.app_context():
            return [job["state"] for job in get_db()["jobs"].rows_where(
                "instance_id = ? AND kind = 'stop'", [row["id"]])]
    wait_until(lambda: stop_jobs() == ["done"], timeout=90, message="the queued stop done once m3 is back")
    assert member_instance(settings, member, "off1").status == "Stopped"
    assert row_named(app, "off1")["status"] == "ready" and row_named(app, "off1")["location"] == "m3"
    with app.app_context():
        assert reconcile.reconcile(get_db(), settings) == []


def payload_processes(names: set[str]) -> list[int]:
    """Processes in the lxc.payload.<name> cgroup of one of `names`."""
    groups = {f"lxc.payload.{name}" for name in names}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            lines = Path(entry.path, "cgroup").read_text().splitlines()
        except OSError:
            continue
        if any(line.split(":", 2)[2].strip("/").split("/")[0] in groups for line in lines):
            found.append(int(entry.name))
    return found


def test_teardown_leaves_nothing(cluster):
    instances = cluster._instance_names()
    assert instances and payload_processes(instances)  # the container above still runs
    cluster.down()
    namespaces = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert [ns for ns in namespaces if ns.startswith("wcl-")] == []
    assert not Path("/sys/class/net", BRIDGE).exists()
    assert cluster_daemons(cluster.base) == []
    assert payload_processes(instances) == []
    assert [name for name in instances if Path("/sys/fs/cgroup/pids", f"lxc.payload.{name}").exists()] == []
    mountpoints = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert [m for m in mountpoints if m.startswith(str(cluster.base))] == []
    assert cluster.leftovers() == {}
    assert list(cluster.base.iterdir()) == []
