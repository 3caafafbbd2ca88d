// Compiled by `npm test` (test/tsconfig.json): every `@ts-expect-error` below
// must be a real type error, or the compile fails. test/types.test.ts also
// compiles this file with the markers removed and checks tsc rejects it.
import type { ClientFrame, RequestFrame, ServerFrame } from "../../src/index.js";

// A well-formed frame compiles.
export const ok: ClientFrame = { t: "msg.send", id: 1, d: { room: "r", cid: "c", text: "hi" } };

// @ts-expect-error -- a msg.send without its cid
export const noCid: ClientFrame = { t: "msg.send", id: 1, d: { room: "r", text: "hi" } };

// @ts-expect-error -- a frame type that does not exist
export const unknownType: ClientFrame = { t: "msg.sned", id: 1, d: { room: "r", cid: "c" } };

// @ts-expect-error -- seq is a number
export const wrongField: ClientFrame = { t: "msg.edit", id: 2, d: { room: "r", seq: "3", text: "x" } };

// @ts-expect-error -- a hello needs a token
export const helloNoToken: ClientFrame = { t: "hello", id: 1, d: { v: 1 } };

// @ts-expect-error -- the client sets ids: a request frame has none
export const requestWithId: RequestFrame = { t: "ping", id: 5 };

export function narrow(frame: ServerFrame): number {
  switch (frame.t) {
    case "msg.new":
      return frame.d.seq; // narrowed to MsgNew: d is a Message
    case "pong":
      return frame.ts;
    case "ai.delta":
      // @ts-expect-error -- ai.delta has no seq
      return frame.d.seq;
    default:
      return 0;
  }
}
