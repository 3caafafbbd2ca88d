export * from "./protocol.js";
export * from "./client.js";
export { SeqTracker } from "./tracker.js";
export { decode as decodeFrame, encode as encodeFrame } from "@msgpack/msgpack";
