// A 1:1 (or small mesh) call: WebRTC media between browsers, signaling through
// the server's call frames (docs/protocol.md, "Calls"). The participant already
// in the call offers to whoever `joined`; the newcomer answers.
import type { CallView, IceServer, RealtimeClient } from "../../typescript/src/index.js";

export interface CallUi {
  status(text: string): void;
  ringing(call: CallView | null): void;
  inCall(active: boolean): void;
  remoteStream(stream: MediaStream): void;
}

export class Calls {
  call: CallView | null = null;
  private ice: IceServer[] = [];
  private readonly peers = new Map<string, RTCPeerConnection>();
  private readonly queued = new Map<string, RTCIceCandidateInit[]>();
  private local: MediaStream | null = null;

  constructor(
    private readonly client: RealtimeClient,
    private readonly me: () => string,
    private readonly ui: CallUi,
  ) {
    client.on("call.ring", (f) => {
      if (this.call && this.call.id !== f.d.id) return; // busy: the server tells the caller
      this.call = f.d;
      this.ice = f.d.ice_servers ?? [];
      this.ui.ringing(f.d);
      this.ui.status("incoming call");
    });
    client.on("call.state", (f) => void this.onState(f.d.event, f.d.user ?? null, f.d.call));
    client.on("call.remote.sdp", (f) => void this.onSdp(f.d.from, f.d.type, f.d.sdp));
    client.on("call.remote.ice", (f) => {
      const init: RTCIceCandidateInit = {
        candidate: f.d.candidate,
        sdpMid: f.d.sdp_mid ?? null,
        sdpMLineIndex: f.d.sdp_mline_index ?? null,
        usernameFragment: f.d.ufrag ?? null,
      };
      const pc = this.peers.get(f.d.from);
      if (pc?.remoteDescription) void pc.addIceCandidate(init).catch(() => undefined);
      else this.queued.set(f.d.from, [...(this.queued.get(f.d.from) ?? []), init]);
    });
  }

  async start(room: string): Promise<void> {
    const reply = await this.client.request({ t: "call.start", d: { room, kind: "audio" } });
    this.call = reply.d;
    this.ice = reply.d.ice_servers ?? [];
    this.ui.inCall(true);
    this.ui.status("ringing…");
  }

  async accept(): Promise<void> {
    if (!this.call) return;
    this.ui.ringing(null);
    const reply = await this.client.request({ t: "call.accept", d: { call: this.call.id } });
    this.call = reply.d;
    this.ui.inCall(true);
    this.ui.status("connecting…");
  }

  async decline(): Promise<void> {
    if (!this.call) return;
    this.ui.ringing(null);
    await this.client.request({ t: "call.decline", d: { call: this.call.id } });
  }

  async hangup(): Promise<void> {
    if (!this.call) return;
    const id = this.call.id;
    this.end("ended");
    await this.client.request({ t: "call.hangup", d: { call: id } }).catch(() => undefined);
  }

  private async onState(event: string, user: string | null, call: CallView): Promise<void> {
    if (this.call && this.call.id !== call.id) return;
    this.call = call;
    const mine = call.participants.find((p) => p.user === this.me());
    if (mine && mine.status !== "ringing") this.ui.ringing(null);
    if (call.state === "ended") {
      this.end(`call ended (${call.outcome ?? "ended"})`);
      return;
    }
    if ((event === "joined" || event === "rejoined") && user && user !== this.me() && mine?.status === "joined") {
      await this.offer(user);
    }
  }

  private async media(): Promise<MediaStream> {
    this.local ??= await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    return this.local;
  }

  private async peer(user: string): Promise<RTCPeerConnection> {
    const existing = this.peers.get(user);
    if (existing) return existing;
    const pc = new RTCPeerConnection({
      iceServers: this.ice.map((s) => ({
        urls: s.urls,
        ...(s.username ? { username: s.username } : {}),
        ...(s.credential ? { credential: s.credential } : {}),
      })),
    });
    this.peers.set(user, pc);
    for (const track of (await this.media()).getTracks()) pc.addTrack(track, this.local as MediaStream);
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      if (!c || !c.candidate || !this.call) return;
      void this.client
        .request({
          t: "call.ice",
          d: {
            call: this.call.id,
            to: user,
            candidate: c.candidate,
            sdp_mid: c.sdpMid,
            sdp_mline_index: c.sdpMLineIndex,
            ufrag: c.usernameFragment,
          },
        })
        .catch(() => undefined);
    };
    pc.onconnectionstatechange = () => this.ui.status(pc.connectionState);
    pc.ontrack = (ev) => {
      const stream = ev.streams[0];
      if (stream) this.ui.remoteStream(stream);
    };
    return pc;
  }

  private async flushIce(user: string, pc: RTCPeerConnection): Promise<void> {
    for (const init of this.queued.get(user) ?? []) await pc.addIceCandidate(init).catch(() => undefined);
    this.queued.delete(user);
  }

  private async offer(user: string): Promise<void> {
    if (!this.call) return;
    const pc = await this.peer(user);
    await pc.setLocalDescription(await pc.createOffer());
    this.ui.status("connecting…");
    await this.client.request({
      t: "call.sdp",
      d: { call: this.call.id, to: user, type: "offer", sdp: pc.localDescription?.sdp ?? "" },
    });
  }

  private async onSdp(from: string, type: "offer" | "answer", sdp: string): Promise<void> {
    if (!this.call) return;
    const pc = await this.peer(from);
    await pc.setRemoteDescription({ type, sdp });
    await this.flushIce(from, pc);
    if (type === "offer") {
      await pc.setLocalDescription(await pc.createAnswer());
      await this.client.request({
        t: "call.sdp",
        d: { call: this.call.id, to: from, type: "answer", sdp: pc.localDescription?.sdp ?? "" },
      });
    }
  }

  private end(text: string): void {
    for (const pc of this.peers.values()) pc.close();
    this.peers.clear();
    this.queued.clear();
    for (const t of this.local?.getTracks() ?? []) t.stop();
    this.local = null;
    this.call = null;
    this.ui.ringing(null);
    this.ui.inCall(false);
    this.ui.status(text);
  }
}
