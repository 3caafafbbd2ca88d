// ../typescript/src/protocol.ts
var PROTOCOL_VERSION = 1;

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/utils/utf8.mjs
function utf8Count(str) {
  const strLength = str.length;
  let byteLength = 0;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      byteLength++;
      continue;
    } else if ((value & 4294965248) === 0) {
      byteLength += 2;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        byteLength += 3;
      } else {
        byteLength += 4;
      }
    }
  }
  return byteLength;
}
function utf8EncodeJs(str, output, outputOffset) {
  const strLength = str.length;
  let offset = outputOffset;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      output[offset++] = value;
      continue;
    } else if ((value & 4294965248) === 0) {
      output[offset++] = value >> 6 & 31 | 192;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        output[offset++] = value >> 12 & 15 | 224;
        output[offset++] = value >> 6 & 63 | 128;
      } else {
        output[offset++] = value >> 18 & 7 | 240;
        output[offset++] = value >> 12 & 63 | 128;
        output[offset++] = value >> 6 & 63 | 128;
      }
    }
    output[offset++] = value & 63 | 128;
  }
}
var sharedTextEncoder = new TextEncoder();
var TEXT_ENCODER_THRESHOLD = 50;
function utf8EncodeTE(str, output, outputOffset) {
  sharedTextEncoder.encodeInto(str, output.subarray(outputOffset));
}
function utf8Encode(str, output, outputOffset) {
  if (str.length > TEXT_ENCODER_THRESHOLD) {
    utf8EncodeTE(str, output, outputOffset);
  } else {
    utf8EncodeJs(str, output, outputOffset);
  }
}
var CHUNK_SIZE = 4096;
function utf8DecodeJs(bytes, inputOffset, byteLength) {
  let offset = inputOffset;
  const end = offset + byteLength;
  const units = [];
  let result = "";
  while (offset < end) {
    const byte1 = bytes[offset++];
    if ((byte1 & 128) === 0) {
      units.push(byte1);
    } else if ((byte1 & 224) === 192) {
      const byte2 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 6 | byte2);
    } else if ((byte1 & 240) === 224) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 12 | byte2 << 6 | byte3);
    } else if ((byte1 & 248) === 240) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      const byte4 = bytes[offset++] & 63;
      let unit = (byte1 & 7) << 18 | byte2 << 12 | byte3 << 6 | byte4;
      if (unit > 65535) {
        unit -= 65536;
        units.push(unit >>> 10 & 1023 | 55296);
        unit = 56320 | unit & 1023;
      }
      units.push(unit);
    } else {
      units.push(byte1);
    }
    if (units.length >= CHUNK_SIZE) {
      result += String.fromCharCode(...units);
      units.length = 0;
    }
  }
  if (units.length > 0) {
    result += String.fromCharCode(...units);
  }
  return result;
}
var sharedTextDecoder = new TextDecoder();
var TEXT_DECODER_THRESHOLD = 200;
function utf8DecodeTD(bytes, inputOffset, byteLength) {
  const stringBytes = bytes.subarray(inputOffset, inputOffset + byteLength);
  return sharedTextDecoder.decode(stringBytes);
}
function utf8Decode(bytes, inputOffset, byteLength) {
  if (byteLength > TEXT_DECODER_THRESHOLD) {
    return utf8DecodeTD(bytes, inputOffset, byteLength);
  } else {
    return utf8DecodeJs(bytes, inputOffset, byteLength);
  }
}

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/ExtData.mjs
var ExtData = class {
  type;
  data;
  constructor(type, data) {
    this.type = type;
    this.data = data;
  }
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/DecodeError.mjs
var DecodeError = class _DecodeError extends Error {
  constructor(message) {
    super(message);
    const proto = Object.create(_DecodeError.prototype);
    Object.setPrototypeOf(this, proto);
    Object.defineProperty(this, "name", {
      configurable: true,
      enumerable: false,
      value: _DecodeError.name
    });
  }
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/utils/int.mjs
var UINT32_MAX = 4294967295;
function setUint64(view, offset, value) {
  const high = value / 4294967296;
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function setInt64(view, offset, value) {
  const high = Math.floor(value / 4294967296);
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function getInt64(view, offset) {
  const high = view.getInt32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}
function getUint64(view, offset) {
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/timestamp.mjs
var EXT_TIMESTAMP = -1;
var TIMESTAMP32_MAX_SEC = 4294967296 - 1;
var TIMESTAMP64_MAX_SEC = 17179869184 - 1;
function encodeTimeSpecToTimestamp({ sec, nsec }) {
  if (sec >= 0 && nsec >= 0 && sec <= TIMESTAMP64_MAX_SEC) {
    if (nsec === 0 && sec <= TIMESTAMP32_MAX_SEC) {
      const rv = new Uint8Array(4);
      const view = new DataView(rv.buffer);
      view.setUint32(0, sec);
      return rv;
    } else {
      const secHigh = sec / 4294967296;
      const secLow = sec & 4294967295;
      const rv = new Uint8Array(8);
      const view = new DataView(rv.buffer);
      view.setUint32(0, nsec << 2 | secHigh & 3);
      view.setUint32(4, secLow);
      return rv;
    }
  } else {
    const rv = new Uint8Array(12);
    const view = new DataView(rv.buffer);
    view.setUint32(0, nsec);
    setInt64(view, 4, sec);
    return rv;
  }
}
function encodeDateToTimeSpec(date) {
  const msec = date.getTime();
  const sec = Math.floor(msec / 1e3);
  const nsec = (msec - sec * 1e3) * 1e6;
  const nsecInSec = Math.floor(nsec / 1e9);
  return {
    sec: sec + nsecInSec,
    nsec: nsec - nsecInSec * 1e9
  };
}
function encodeTimestampExtension(object) {
  if (object instanceof Date) {
    const timeSpec = encodeDateToTimeSpec(object);
    return encodeTimeSpecToTimestamp(timeSpec);
  } else {
    return null;
  }
}
function decodeTimestampToTimeSpec(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data.byteLength) {
    case 4: {
      const sec = view.getUint32(0);
      const nsec = 0;
      return { sec, nsec };
    }
    case 8: {
      const nsec30AndSecHigh2 = view.getUint32(0);
      const secLow32 = view.getUint32(4);
      const sec = (nsec30AndSecHigh2 & 3) * 4294967296 + secLow32;
      const nsec = nsec30AndSecHigh2 >>> 2;
      return { sec, nsec };
    }
    case 12: {
      const sec = getInt64(view, 4);
      const nsec = view.getUint32(0);
      return { sec, nsec };
    }
    default:
      throw new DecodeError(`Unrecognized data size for timestamp (expected 4, 8, or 12): ${data.length}`);
  }
}
function decodeTimestampExtension(data) {
  const timeSpec = decodeTimestampToTimeSpec(data);
  return new Date(timeSpec.sec * 1e3 + timeSpec.nsec / 1e6);
}
var timestampExtension = {
  type: EXT_TIMESTAMP,
  encode: encodeTimestampExtension,
  decode: decodeTimestampExtension
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/ExtensionCodec.mjs
var ExtensionCodec = class _ExtensionCodec {
  static defaultCodec = new _ExtensionCodec();
  // ensures ExtensionCodecType<X> matches ExtensionCodec<X>
  // this will make type errors a lot more clear
  // eslint-disable-next-line @typescript-eslint/naming-convention
  __brand;
  // built-in extensions
  builtInEncoders = [];
  builtInDecoders = [];
  // custom extensions
  encoders = [];
  decoders = [];
  constructor() {
    this.register(timestampExtension);
  }
  register({ type, encode: encode2, decode: decode2 }) {
    if (type >= 0) {
      this.encoders[type] = encode2;
      this.decoders[type] = decode2;
    } else {
      const index = -1 - type;
      this.builtInEncoders[index] = encode2;
      this.builtInDecoders[index] = decode2;
    }
  }
  tryToEncode(object, context) {
    for (let i = 0; i < this.builtInEncoders.length; i++) {
      const encodeExt = this.builtInEncoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = -1 - i;
          return new ExtData(type, data);
        }
      }
    }
    for (let i = 0; i < this.encoders.length; i++) {
      const encodeExt = this.encoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = i;
          return new ExtData(type, data);
        }
      }
    }
    if (object instanceof ExtData) {
      return object;
    }
    return null;
  }
  decode(data, type, context) {
    const decodeExt = type < 0 ? this.builtInDecoders[-1 - type] : this.decoders[type];
    if (decodeExt) {
      return decodeExt(data, type, context);
    } else {
      return new ExtData(type, data);
    }
  }
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/utils/typedArrays.mjs
function isArrayBufferLike(buffer) {
  return buffer instanceof ArrayBuffer || typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
}
function ensureUint8Array(buffer) {
  if (buffer instanceof Uint8Array) {
    return buffer;
  } else if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } else if (isArrayBufferLike(buffer)) {
    return new Uint8Array(buffer);
  } else {
    return Uint8Array.from(buffer);
  }
}

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/Encoder.mjs
var DEFAULT_MAX_DEPTH = 100;
var DEFAULT_INITIAL_BUFFER_SIZE = 2048;
var Encoder = class _Encoder {
  extensionCodec;
  context;
  useBigInt64;
  maxDepth;
  initialBufferSize;
  sortKeys;
  forceFloat32;
  ignoreUndefined;
  forceIntegerToFloat;
  pos;
  view;
  bytes;
  entered = false;
  constructor(options) {
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.initialBufferSize = options?.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.sortKeys = options?.sortKeys ?? false;
    this.forceFloat32 = options?.forceFloat32 ?? false;
    this.ignoreUndefined = options?.ignoreUndefined ?? false;
    this.forceIntegerToFloat = options?.forceIntegerToFloat ?? false;
    this.pos = 0;
    this.view = new DataView(new ArrayBuffer(this.initialBufferSize));
    this.bytes = new Uint8Array(this.view.buffer);
  }
  clone() {
    return new _Encoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      maxDepth: this.maxDepth,
      initialBufferSize: this.initialBufferSize,
      sortKeys: this.sortKeys,
      forceFloat32: this.forceFloat32,
      ignoreUndefined: this.ignoreUndefined,
      forceIntegerToFloat: this.forceIntegerToFloat
    });
  }
  reinitializeState() {
    this.pos = 0;
  }
  /**
   * This is almost equivalent to {@link Encoder#encode}, but it returns an reference of the encoder's internal buffer and thus much faster than {@link Encoder#encode}.
   *
   * @returns Encodes the object and returns a shared reference the encoder's internal buffer.
   */
  encodeSharedRef(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encodeSharedRef(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.subarray(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  /**
   * @returns Encodes the object and returns a copy of the encoder's internal buffer.
   */
  encode(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encode(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.slice(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  doEncode(object, depth) {
    if (depth > this.maxDepth) {
      throw new Error(`Too deep objects in depth ${depth}`);
    }
    if (object == null) {
      this.encodeNil();
    } else if (typeof object === "boolean") {
      this.encodeBoolean(object);
    } else if (typeof object === "number") {
      if (!this.forceIntegerToFloat) {
        this.encodeNumber(object);
      } else {
        this.encodeNumberAsFloat(object);
      }
    } else if (typeof object === "string") {
      this.encodeString(object);
    } else if (this.useBigInt64 && typeof object === "bigint") {
      this.encodeBigInt64(object);
    } else {
      this.encodeObject(object, depth);
    }
  }
  ensureBufferSizeToWrite(sizeToWrite) {
    const requiredSize = this.pos + sizeToWrite;
    if (this.view.byteLength < requiredSize) {
      this.resizeBuffer(requiredSize * 2);
    }
  }
  resizeBuffer(newSize) {
    const newBuffer = new ArrayBuffer(newSize);
    const newBytes = new Uint8Array(newBuffer);
    const newView = new DataView(newBuffer);
    newBytes.set(this.bytes);
    this.view = newView;
    this.bytes = newBytes;
  }
  encodeNil() {
    this.writeU8(192);
  }
  encodeBoolean(object) {
    if (object === false) {
      this.writeU8(194);
    } else {
      this.writeU8(195);
    }
  }
  encodeNumber(object) {
    if (!this.forceIntegerToFloat && Number.isSafeInteger(object)) {
      if (object >= 0) {
        if (object < 128) {
          this.writeU8(object);
        } else if (object < 256) {
          this.writeU8(204);
          this.writeU8(object);
        } else if (object < 65536) {
          this.writeU8(205);
          this.writeU16(object);
        } else if (object < 4294967296) {
          this.writeU8(206);
          this.writeU32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(207);
          this.writeU64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      } else {
        if (object >= -32) {
          this.writeU8(224 | object + 32);
        } else if (object >= -128) {
          this.writeU8(208);
          this.writeI8(object);
        } else if (object >= -32768) {
          this.writeU8(209);
          this.writeI16(object);
        } else if (object >= -2147483648) {
          this.writeU8(210);
          this.writeI32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(211);
          this.writeI64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      }
    } else {
      this.encodeNumberAsFloat(object);
    }
  }
  encodeNumberAsFloat(object) {
    if (this.forceFloat32) {
      this.writeU8(202);
      this.writeF32(object);
    } else {
      this.writeU8(203);
      this.writeF64(object);
    }
  }
  encodeBigInt64(object) {
    if (object >= BigInt(0)) {
      this.writeU8(207);
      this.writeBigUint64(object);
    } else {
      this.writeU8(211);
      this.writeBigInt64(object);
    }
  }
  writeStringHeader(byteLength) {
    if (byteLength < 32) {
      this.writeU8(160 + byteLength);
    } else if (byteLength < 256) {
      this.writeU8(217);
      this.writeU8(byteLength);
    } else if (byteLength < 65536) {
      this.writeU8(218);
      this.writeU16(byteLength);
    } else if (byteLength < 4294967296) {
      this.writeU8(219);
      this.writeU32(byteLength);
    } else {
      throw new Error(`Too long string: ${byteLength} bytes in UTF-8`);
    }
  }
  encodeString(object) {
    const maxHeaderSize = 1 + 4;
    const byteLength = utf8Count(object);
    this.ensureBufferSizeToWrite(maxHeaderSize + byteLength);
    this.writeStringHeader(byteLength);
    utf8Encode(object, this.bytes, this.pos);
    this.pos += byteLength;
  }
  encodeObject(object, depth) {
    const ext = this.extensionCodec.tryToEncode(object, this.context);
    if (ext != null) {
      this.encodeExtension(ext);
    } else if (Array.isArray(object)) {
      this.encodeArray(object, depth);
    } else if (ArrayBuffer.isView(object)) {
      this.encodeBinary(object);
    } else if (typeof object === "object") {
      this.encodeMap(object, depth);
    } else {
      throw new Error(`Unrecognized object: ${Object.prototype.toString.apply(object)}`);
    }
  }
  encodeBinary(object) {
    const size = object.byteLength;
    if (size < 256) {
      this.writeU8(196);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(197);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(198);
      this.writeU32(size);
    } else {
      throw new Error(`Too large binary: ${size}`);
    }
    const bytes = ensureUint8Array(object);
    this.writeU8a(bytes);
  }
  encodeArray(object, depth) {
    const size = object.length;
    if (size < 16) {
      this.writeU8(144 + size);
    } else if (size < 65536) {
      this.writeU8(220);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(221);
      this.writeU32(size);
    } else {
      throw new Error(`Too large array: ${size}`);
    }
    for (const item of object) {
      this.doEncode(item, depth + 1);
    }
  }
  countWithoutUndefined(object, keys) {
    let count = 0;
    for (const key of keys) {
      if (object[key] !== void 0) {
        count++;
      }
    }
    return count;
  }
  encodeMap(object, depth) {
    const keys = Object.keys(object);
    if (this.sortKeys) {
      keys.sort();
    }
    const size = this.ignoreUndefined ? this.countWithoutUndefined(object, keys) : keys.length;
    if (size < 16) {
      this.writeU8(128 + size);
    } else if (size < 65536) {
      this.writeU8(222);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(223);
      this.writeU32(size);
    } else {
      throw new Error(`Too large map object: ${size}`);
    }
    for (const key of keys) {
      const value = object[key];
      if (!(this.ignoreUndefined && value === void 0)) {
        this.encodeString(key);
        this.doEncode(value, depth + 1);
      }
    }
  }
  encodeExtension(ext) {
    if (typeof ext.data === "function") {
      const data = ext.data(this.pos + 6);
      const size2 = data.length;
      if (size2 >= 4294967296) {
        throw new Error(`Too large extension object: ${size2}`);
      }
      this.writeU8(201);
      this.writeU32(size2);
      this.writeI8(ext.type);
      this.writeU8a(data);
      return;
    }
    const size = ext.data.length;
    if (size === 1) {
      this.writeU8(212);
    } else if (size === 2) {
      this.writeU8(213);
    } else if (size === 4) {
      this.writeU8(214);
    } else if (size === 8) {
      this.writeU8(215);
    } else if (size === 16) {
      this.writeU8(216);
    } else if (size < 256) {
      this.writeU8(199);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(200);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(201);
      this.writeU32(size);
    } else {
      throw new Error(`Too large extension object: ${size}`);
    }
    this.writeI8(ext.type);
    this.writeU8a(ext.data);
  }
  writeU8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setUint8(this.pos, value);
    this.pos++;
  }
  writeU8a(values) {
    const size = values.length;
    this.ensureBufferSizeToWrite(size);
    this.bytes.set(values, this.pos);
    this.pos += size;
  }
  writeI8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setInt8(this.pos, value);
    this.pos++;
  }
  writeU16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setUint16(this.pos, value);
    this.pos += 2;
  }
  writeI16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setInt16(this.pos, value);
    this.pos += 2;
  }
  writeU32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setUint32(this.pos, value);
    this.pos += 4;
  }
  writeI32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setInt32(this.pos, value);
    this.pos += 4;
  }
  writeF32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setFloat32(this.pos, value);
    this.pos += 4;
  }
  writeF64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setFloat64(this.pos, value);
    this.pos += 8;
  }
  writeU64(value) {
    this.ensureBufferSizeToWrite(8);
    setUint64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeI64(value) {
    this.ensureBufferSizeToWrite(8);
    setInt64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeBigUint64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigUint64(this.pos, value);
    this.pos += 8;
  }
  writeBigInt64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigInt64(this.pos, value);
    this.pos += 8;
  }
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/encode.mjs
function encode(value, options) {
  const encoder = new Encoder(options);
  return encoder.encodeSharedRef(value);
}

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/utils/prettyByte.mjs
function prettyByte(byte) {
  return `${byte < 0 ? "-" : ""}0x${Math.abs(byte).toString(16).padStart(2, "0")}`;
}

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/CachedKeyDecoder.mjs
var DEFAULT_MAX_KEY_LENGTH = 16;
var DEFAULT_MAX_LENGTH_PER_KEY = 16;
var CachedKeyDecoder = class {
  hit = 0;
  miss = 0;
  caches;
  maxKeyLength;
  maxLengthPerKey;
  constructor(maxKeyLength = DEFAULT_MAX_KEY_LENGTH, maxLengthPerKey = DEFAULT_MAX_LENGTH_PER_KEY) {
    this.maxKeyLength = maxKeyLength;
    this.maxLengthPerKey = maxLengthPerKey;
    this.caches = [];
    for (let i = 0; i < this.maxKeyLength; i++) {
      this.caches.push([]);
    }
  }
  canBeCached(byteLength) {
    return byteLength > 0 && byteLength <= this.maxKeyLength;
  }
  find(bytes, inputOffset, byteLength) {
    const records = this.caches[byteLength - 1];
    FIND_CHUNK: for (const record of records) {
      const recordBytes = record.bytes;
      for (let j = 0; j < byteLength; j++) {
        if (recordBytes[j] !== bytes[inputOffset + j]) {
          continue FIND_CHUNK;
        }
      }
      return record.str;
    }
    return null;
  }
  store(bytes, value) {
    const records = this.caches[bytes.length - 1];
    const record = { bytes, str: value };
    if (records.length >= this.maxLengthPerKey) {
      records[Math.random() * records.length | 0] = record;
    } else {
      records.push(record);
    }
  }
  decode(bytes, inputOffset, byteLength) {
    const cachedValue = this.find(bytes, inputOffset, byteLength);
    if (cachedValue != null) {
      this.hit++;
      return cachedValue;
    }
    this.miss++;
    const str = utf8DecodeJs(bytes, inputOffset, byteLength);
    const slicedCopyOfBytes = Uint8Array.prototype.slice.call(bytes, inputOffset, inputOffset + byteLength);
    this.store(slicedCopyOfBytes, str);
    return str;
  }
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/Decoder.mjs
var STATE_ARRAY = "array";
var STATE_MAP_KEY = "map_key";
var STATE_MAP_VALUE = "map_value";
var mapKeyConverter = (key) => {
  if (typeof key === "string" || typeof key === "number") {
    return key;
  }
  throw new DecodeError("The type of key must be string or number but " + typeof key);
};
var StackPool = class {
  stack = [];
  stackHeadPosition = -1;
  get length() {
    return this.stackHeadPosition + 1;
  }
  top() {
    return this.stack[this.stackHeadPosition];
  }
  pushArrayState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_ARRAY;
    state.position = 0;
    state.size = size;
    state.array = new Array(size);
  }
  pushMapState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_MAP_KEY;
    state.readCount = 0;
    state.size = size;
    state.map = {};
  }
  getUninitializedStateFromPool() {
    this.stackHeadPosition++;
    if (this.stackHeadPosition === this.stack.length) {
      const partialState = {
        type: void 0,
        size: 0,
        array: void 0,
        position: 0,
        readCount: 0,
        map: void 0,
        key: null
      };
      this.stack.push(partialState);
    }
    return this.stack[this.stackHeadPosition];
  }
  release(state) {
    const topStackState = this.stack[this.stackHeadPosition];
    if (topStackState !== state) {
      throw new Error("Invalid stack state. Released state is not on top of the stack.");
    }
    if (state.type === STATE_ARRAY) {
      const partialState = state;
      partialState.size = 0;
      partialState.array = void 0;
      partialState.position = 0;
      partialState.type = void 0;
    }
    if (state.type === STATE_MAP_KEY || state.type === STATE_MAP_VALUE) {
      const partialState = state;
      partialState.size = 0;
      partialState.map = void 0;
      partialState.readCount = 0;
      partialState.type = void 0;
    }
    this.stackHeadPosition--;
  }
  reset() {
    this.stack.length = 0;
    this.stackHeadPosition = -1;
  }
};
var HEAD_BYTE_REQUIRED = -1;
var EMPTY_VIEW = new DataView(new ArrayBuffer(0));
var EMPTY_BYTES = new Uint8Array(EMPTY_VIEW.buffer);
try {
  EMPTY_VIEW.getInt8(0);
} catch (e) {
  if (!(e instanceof RangeError)) {
    throw new Error("This module is not supported in the current JavaScript engine because DataView does not throw RangeError on out-of-bounds access");
  }
}
var MORE_DATA = new RangeError("Insufficient data");
var sharedCachedKeyDecoder = new CachedKeyDecoder();
var Decoder = class _Decoder {
  extensionCodec;
  context;
  useBigInt64;
  rawStrings;
  maxStrLength;
  maxBinLength;
  maxArrayLength;
  maxMapLength;
  maxExtLength;
  keyDecoder;
  mapKeyConverter;
  totalPos = 0;
  pos = 0;
  view = EMPTY_VIEW;
  bytes = EMPTY_BYTES;
  headByte = HEAD_BYTE_REQUIRED;
  stack = new StackPool();
  entered = false;
  constructor(options) {
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.rawStrings = options?.rawStrings ?? false;
    this.maxStrLength = options?.maxStrLength ?? UINT32_MAX;
    this.maxBinLength = options?.maxBinLength ?? UINT32_MAX;
    this.maxArrayLength = options?.maxArrayLength ?? UINT32_MAX;
    this.maxMapLength = options?.maxMapLength ?? UINT32_MAX;
    this.maxExtLength = options?.maxExtLength ?? UINT32_MAX;
    this.keyDecoder = options?.keyDecoder !== void 0 ? options.keyDecoder : sharedCachedKeyDecoder;
    this.mapKeyConverter = options?.mapKeyConverter ?? mapKeyConverter;
  }
  clone() {
    return new _Decoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      rawStrings: this.rawStrings,
      maxStrLength: this.maxStrLength,
      maxBinLength: this.maxBinLength,
      maxArrayLength: this.maxArrayLength,
      maxMapLength: this.maxMapLength,
      maxExtLength: this.maxExtLength,
      keyDecoder: this.keyDecoder
    });
  }
  reinitializeState() {
    this.totalPos = 0;
    this.headByte = HEAD_BYTE_REQUIRED;
    this.stack.reset();
  }
  setBuffer(buffer) {
    const bytes = ensureUint8Array(buffer);
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  appendBuffer(buffer) {
    if (this.headByte === HEAD_BYTE_REQUIRED && !this.hasRemaining(1)) {
      this.setBuffer(buffer);
    } else {
      const remainingData = this.bytes.subarray(this.pos);
      const newData = ensureUint8Array(buffer);
      const newBuffer = new Uint8Array(remainingData.length + newData.length);
      newBuffer.set(remainingData);
      newBuffer.set(newData, remainingData.length);
      this.setBuffer(newBuffer);
    }
  }
  hasRemaining(size) {
    return this.view.byteLength - this.pos >= size;
  }
  createExtraByteError(posToShow) {
    const { view, pos } = this;
    return new RangeError(`Extra ${view.byteLength - pos} of ${view.byteLength} byte(s) found at buffer[${posToShow}]`);
  }
  /**
   * @throws {@link DecodeError}
   * @throws {@link RangeError}
   */
  decode(buffer) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decode(buffer);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      const object = this.doDecodeSync();
      if (this.hasRemaining(1)) {
        throw this.createExtraByteError(this.pos);
      }
      return object;
    } finally {
      this.entered = false;
    }
  }
  *decodeMulti(buffer) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMulti(buffer);
      return;
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      while (this.hasRemaining(1)) {
        yield this.doDecodeSync();
      }
    } finally {
      this.entered = false;
    }
  }
  async decodeAsync(stream) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decodeAsync(stream);
    }
    try {
      this.entered = true;
      let decoded = false;
      let object;
      for await (const buffer of stream) {
        if (decoded) {
          this.entered = false;
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        try {
          object = this.doDecodeSync();
          decoded = true;
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
      if (decoded) {
        if (this.hasRemaining(1)) {
          throw this.createExtraByteError(this.totalPos);
        }
        return object;
      }
      const { headByte, pos, totalPos } = this;
      throw new RangeError(`Insufficient data in parsing ${prettyByte(headByte)} at ${totalPos} (${pos} in the current buffer)`);
    } finally {
      this.entered = false;
    }
  }
  decodeArrayStream(stream) {
    return this.decodeMultiAsync(stream, true);
  }
  decodeStream(stream) {
    return this.decodeMultiAsync(stream, false);
  }
  async *decodeMultiAsync(stream, isArray) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMultiAsync(stream, isArray);
      return;
    }
    try {
      this.entered = true;
      let isArrayHeaderRequired = isArray;
      let arrayItemsLeft = -1;
      for await (const buffer of stream) {
        if (isArray && arrayItemsLeft === 0) {
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        if (isArrayHeaderRequired) {
          arrayItemsLeft = this.readArraySize();
          isArrayHeaderRequired = false;
          this.complete();
        }
        try {
          while (true) {
            yield this.doDecodeSync();
            if (--arrayItemsLeft === 0) {
              break;
            }
          }
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
    } finally {
      this.entered = false;
    }
  }
  doDecodeSync() {
    DECODE: while (true) {
      const headByte = this.readHeadByte();
      let object;
      if (headByte >= 224) {
        object = headByte - 256;
      } else if (headByte < 192) {
        if (headByte < 128) {
          object = headByte;
        } else if (headByte < 144) {
          const size = headByte - 128;
          if (size !== 0) {
            this.pushMapState(size);
            this.complete();
            continue DECODE;
          } else {
            object = {};
          }
        } else if (headByte < 160) {
          const size = headByte - 144;
          if (size !== 0) {
            this.pushArrayState(size);
            this.complete();
            continue DECODE;
          } else {
            object = [];
          }
        } else {
          const byteLength = headByte - 160;
          object = this.decodeString(byteLength, 0);
        }
      } else if (headByte === 192) {
        object = null;
      } else if (headByte === 194) {
        object = false;
      } else if (headByte === 195) {
        object = true;
      } else if (headByte === 202) {
        object = this.readF32();
      } else if (headByte === 203) {
        object = this.readF64();
      } else if (headByte === 204) {
        object = this.readU8();
      } else if (headByte === 205) {
        object = this.readU16();
      } else if (headByte === 206) {
        object = this.readU32();
      } else if (headByte === 207) {
        if (this.useBigInt64) {
          object = this.readU64AsBigInt();
        } else {
          object = this.readU64();
        }
      } else if (headByte === 208) {
        object = this.readI8();
      } else if (headByte === 209) {
        object = this.readI16();
      } else if (headByte === 210) {
        object = this.readI32();
      } else if (headByte === 211) {
        if (this.useBigInt64) {
          object = this.readI64AsBigInt();
        } else {
          object = this.readI64();
        }
      } else if (headByte === 217) {
        const byteLength = this.lookU8();
        object = this.decodeString(byteLength, 1);
      } else if (headByte === 218) {
        const byteLength = this.lookU16();
        object = this.decodeString(byteLength, 2);
      } else if (headByte === 219) {
        const byteLength = this.lookU32();
        object = this.decodeString(byteLength, 4);
      } else if (headByte === 220) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 221) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 222) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 223) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 196) {
        const size = this.lookU8();
        object = this.decodeBinary(size, 1);
      } else if (headByte === 197) {
        const size = this.lookU16();
        object = this.decodeBinary(size, 2);
      } else if (headByte === 198) {
        const size = this.lookU32();
        object = this.decodeBinary(size, 4);
      } else if (headByte === 212) {
        object = this.decodeExtension(1, 0);
      } else if (headByte === 213) {
        object = this.decodeExtension(2, 0);
      } else if (headByte === 214) {
        object = this.decodeExtension(4, 0);
      } else if (headByte === 215) {
        object = this.decodeExtension(8, 0);
      } else if (headByte === 216) {
        object = this.decodeExtension(16, 0);
      } else if (headByte === 199) {
        const size = this.lookU8();
        object = this.decodeExtension(size, 1);
      } else if (headByte === 200) {
        const size = this.lookU16();
        object = this.decodeExtension(size, 2);
      } else if (headByte === 201) {
        const size = this.lookU32();
        object = this.decodeExtension(size, 4);
      } else {
        throw new DecodeError(`Unrecognized type byte: ${prettyByte(headByte)}`);
      }
      this.complete();
      const stack = this.stack;
      while (stack.length > 0) {
        const state = stack.top();
        if (state.type === STATE_ARRAY) {
          state.array[state.position] = object;
          state.position++;
          if (state.position === state.size) {
            object = state.array;
            stack.release(state);
          } else {
            continue DECODE;
          }
        } else if (state.type === STATE_MAP_KEY) {
          if (object === "__proto__") {
            throw new DecodeError("The key __proto__ is not allowed");
          }
          state.key = this.mapKeyConverter(object);
          state.type = STATE_MAP_VALUE;
          continue DECODE;
        } else {
          state.map[state.key] = object;
          state.readCount++;
          if (state.readCount === state.size) {
            object = state.map;
            stack.release(state);
          } else {
            state.key = null;
            state.type = STATE_MAP_KEY;
            continue DECODE;
          }
        }
      }
      return object;
    }
  }
  readHeadByte() {
    if (this.headByte === HEAD_BYTE_REQUIRED) {
      this.headByte = this.readU8();
    }
    return this.headByte;
  }
  complete() {
    this.headByte = HEAD_BYTE_REQUIRED;
  }
  readArraySize() {
    const headByte = this.readHeadByte();
    switch (headByte) {
      case 220:
        return this.readU16();
      case 221:
        return this.readU32();
      default: {
        if (headByte < 160) {
          return headByte - 144;
        } else {
          throw new DecodeError(`Unrecognized array type byte: ${prettyByte(headByte)}`);
        }
      }
    }
  }
  pushMapState(size) {
    if (size > this.maxMapLength) {
      throw new DecodeError(`Max length exceeded: map length (${size}) > maxMapLengthLength (${this.maxMapLength})`);
    }
    this.stack.pushMapState(size);
  }
  pushArrayState(size) {
    if (size > this.maxArrayLength) {
      throw new DecodeError(`Max length exceeded: array length (${size}) > maxArrayLength (${this.maxArrayLength})`);
    }
    this.stack.pushArrayState(size);
  }
  decodeString(byteLength, headerOffset) {
    if (!this.rawStrings || this.stateIsMapKey()) {
      return this.decodeUtf8String(byteLength, headerOffset);
    }
    return this.decodeBinary(byteLength, headerOffset);
  }
  /**
   * @throws {@link RangeError}
   */
  decodeUtf8String(byteLength, headerOffset) {
    if (byteLength > this.maxStrLength) {
      throw new DecodeError(`Max length exceeded: UTF-8 byte length (${byteLength}) > maxStrLength (${this.maxStrLength})`);
    }
    if (this.bytes.byteLength < this.pos + headerOffset + byteLength) {
      throw MORE_DATA;
    }
    const offset = this.pos + headerOffset;
    let object;
    if (this.stateIsMapKey() && this.keyDecoder?.canBeCached(byteLength)) {
      object = this.keyDecoder.decode(this.bytes, offset, byteLength);
    } else {
      object = utf8Decode(this.bytes, offset, byteLength);
    }
    this.pos += headerOffset + byteLength;
    return object;
  }
  stateIsMapKey() {
    if (this.stack.length > 0) {
      const state = this.stack.top();
      return state.type === STATE_MAP_KEY;
    }
    return false;
  }
  /**
   * @throws {@link RangeError}
   */
  decodeBinary(byteLength, headOffset) {
    if (byteLength > this.maxBinLength) {
      throw new DecodeError(`Max length exceeded: bin length (${byteLength}) > maxBinLength (${this.maxBinLength})`);
    }
    if (!this.hasRemaining(byteLength + headOffset)) {
      throw MORE_DATA;
    }
    const offset = this.pos + headOffset;
    const object = this.bytes.subarray(offset, offset + byteLength);
    this.pos += headOffset + byteLength;
    return object;
  }
  decodeExtension(size, headOffset) {
    if (size > this.maxExtLength) {
      throw new DecodeError(`Max length exceeded: ext length (${size}) > maxExtLength (${this.maxExtLength})`);
    }
    const extType = this.view.getInt8(this.pos + headOffset);
    const data = this.decodeBinary(
      size,
      headOffset + 1
      /* extType */
    );
    return this.extensionCodec.decode(data, extType, this.context);
  }
  lookU8() {
    return this.view.getUint8(this.pos);
  }
  lookU16() {
    return this.view.getUint16(this.pos);
  }
  lookU32() {
    return this.view.getUint32(this.pos);
  }
  readU8() {
    const value = this.view.getUint8(this.pos);
    this.pos++;
    return value;
  }
  readI8() {
    const value = this.view.getInt8(this.pos);
    this.pos++;
    return value;
  }
  readU16() {
    const value = this.view.getUint16(this.pos);
    this.pos += 2;
    return value;
  }
  readI16() {
    const value = this.view.getInt16(this.pos);
    this.pos += 2;
    return value;
  }
  readU32() {
    const value = this.view.getUint32(this.pos);
    this.pos += 4;
    return value;
  }
  readI32() {
    const value = this.view.getInt32(this.pos);
    this.pos += 4;
    return value;
  }
  readU64() {
    const value = getUint64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readI64() {
    const value = getInt64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readU64AsBigInt() {
    const value = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return value;
  }
  readI64AsBigInt() {
    const value = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return value;
  }
  readF32() {
    const value = this.view.getFloat32(this.pos);
    this.pos += 4;
    return value;
  }
  readF64() {
    const value = this.view.getFloat64(this.pos);
    this.pos += 8;
    return value;
  }
};

// ../typescript/node_modules/@msgpack/msgpack/dist.esm/decode.mjs
function decode(buffer, options) {
  const decoder = new Decoder(options);
  return decoder.decode(buffer);
}

// ../typescript/src/tracker.ts
var SeqTracker = class {
  base = /* @__PURE__ */ new Map();
  above = /* @__PURE__ */ new Map();
  /** Start from these cursors (what the app persisted). */
  constructor(initial = {}) {
    for (const [room, n] of Object.entries(initial)) this.base.set(room, n);
  }
  has(room, n) {
    const base = this.base.get(room);
    if (base !== void 0 && n <= base) return true;
    return this.above.get(room)?.has(n) ?? false;
  }
  /** The cursor of `room`, or undefined for a room never seen. */
  cursor(room) {
    return this.base.get(room);
  }
  /**
   * Record `n`; false when it was already seen (a duplicate to drop).
   * A room seen for the first time starts at n - 1: its earlier history is
   * the app's business (REST), not a hole to wait for.
   */
  see(room, n) {
    if (!this.base.has(room)) this.base.set(room, n - 1);
    if (this.has(room, n)) return false;
    let base = this.base.get(room) ?? 0;
    const set = this.above.get(room) ?? /* @__PURE__ */ new Set();
    set.add(n);
    while (set.has(base + 1)) {
      base += 1;
      set.delete(base);
    }
    this.base.set(room, base);
    if (set.size > 0) this.above.set(room, set);
    else this.above.delete(room);
    return true;
  }
  /** Everything up to `n` is covered (resume.done, a reloaded history): never moves back. */
  advance(room, n) {
    const base = Math.max(this.base.get(room) ?? n, n);
    const set = this.above.get(room);
    let b = base;
    if (set) {
      for (const x of [...set]) if (x <= b) set.delete(x);
      while (set.has(b + 1)) {
        b += 1;
        set.delete(b);
      }
      if (set.size === 0) this.above.delete(room);
    }
    this.base.set(room, b);
  }
  /** The next number expected in `room` is more than one above the cursor. */
  isAhead(room, n) {
    const base = this.base.get(room);
    return base !== void 0 && n > base + 1;
  }
  snapshot() {
    return Object.fromEntries(this.base);
  }
};

// ../typescript/src/client.ts
var ClientError = class extends Error {
};
var ServerError = class extends ClientError {
  constructor(code, msg) {
    super(`${code}: ${msg}`);
    this.code = code;
    this.msg = msg;
    this.name = "ServerError";
  }
  code;
  msg;
};
var ConnectionClosedError = class extends ClientError {
  constructor(code, reason) {
    super(`connection closed with ${code}${reason ? `: ${reason}` : ""}`);
    this.code = code;
    this.reason = reason;
    this.name = "ConnectionClosedError";
  }
  code;
  reason;
};
var RequestTimeoutError = class extends ClientError {
  constructor(t) {
    super(`no reply to ${t} in time`);
    this.t = t;
    this.name = "RequestTimeoutError";
  }
  t;
};
var ABNORMAL = 1006;
var NORMAL = 1e3;
var TOKEN_EXPIRED = 4102;
var RETRYABLE = /* @__PURE__ */ new Set(["timeout", "unavailable", "overloaded", "rate_limited"]);
var IDEMPOTENT = /* @__PURE__ */ new Set(["msg.send", "ai.ask", "msg.forward"]);
var CHANGES = /* @__PURE__ */ new Set(["msg.edited", "msg.deleted", "msg.reaction", "rcpt.update"]);
function isTerminal(code) {
  return code >= 4100 && code <= 4199;
}
var defaultTimers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h2) => globalThis.clearTimeout(h2),
  now: () => Date.now()
};
function defaultWebSocket(url) {
  const ctor = globalThis.WebSocket;
  if (!ctor) throw new ClientError("no WebSocket here: pass options.webSocket");
  return new ctor(url);
}
function isObject(x) {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
var RealtimeClient = class {
  /** The last `welcome`; undefined before the first one. */
  welcome;
  opts;
  timers;
  backoff;
  random;
  newCid;
  seqs;
  evs;
  listeners = /* @__PURE__ */ new Map();
  statusListeners = /* @__PURE__ */ new Set();
  gapListeners = /* @__PURE__ */ new Set();
  pending = /* @__PURE__ */ new Set();
  byId = /* @__PURE__ */ new Map();
  ws = null;
  nextId = 1;
  helloId = 0;
  attempt = 0;
  refreshed = false;
  stopped = false;
  status = { state: "idle" };
  token = null;
  reconnectTimer = null;
  helloTimer = null;
  beatTimer = null;
  lastRx = 0;
  pinging = false;
  constructor(options) {
    this.opts = options;
    this.timers = options.timers ?? defaultTimers;
    this.backoff = { initial: 500, max: 3e4, jitter: 0.5, ...options.backoff };
    this.random = options.random ?? Math.random;
    this.newCid = options.newCid ?? (() => globalThis.crypto.randomUUID());
    this.seqs = new SeqTracker(options.cursors?.cursors);
    this.evs = new SeqTracker(options.cursors?.evs);
  }
  // ----- lifecycle --------------------------------------------------------------
  get state() {
    return this.status.state;
  }
  /** Connect (and keep reconnecting). Resolves on the first `welcome`; rejects on a terminal close. */
  connect() {
    this.stopped = false;
    return new Promise((resolve, reject) => {
      const off = this.onStatus((s) => {
        if (s.state === "open" && this.welcome) {
          off();
          resolve(this.welcome);
        } else if (s.state === "closed") {
          off();
          reject(new ConnectionClosedError(s.code ?? NORMAL, s.reason ?? ""));
        }
      });
      if (this.status.state === "idle" || this.status.state === "closed") void this.open();
    });
  }
  /** Close for good (1000). Pending requests fail with ConnectionClosedError. */
  close() {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      ws.close(NORMAL, "bye");
    }
    this.failAll(new ConnectionClosedError(NORMAL, "closed by the client"), true);
    this.setStatus({ state: "closed", code: NORMAL });
  }
  /** After a terminal close the app acted (signed in again, updated the token): try again. */
  reconnect() {
    this.close();
    this.refreshed = false;
    this.attempt = 0;
    return this.connect();
  }
  /** Drop the socket as if the network failed: the client reconnects on its own. */
  drop(reason = "dropped") {
    const ws = this.ws;
    if (!ws) return;
    detach(ws);
    this.ws = null;
    try {
      ws.close(4e3, reason);
    } catch {
    }
    this.onClosed(ABNORMAL, reason);
  }
  // ----- events -------------------------------------------------------------------
  /** Listen to pushes of type `t` (after deduplication); returns the unsubscribe function. */
  on(t, fn) {
    const set = this.listeners.get(t) ?? /* @__PURE__ */ new Set();
    set.add(fn);
    this.listeners.set(t, set);
    return () => set.delete(fn);
  }
  /** Every push, whatever its type (unknown types included, as decoded maps). */
  onAny(fn) {
    return this.on("*", fn);
  }
  onStatus(fn) {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }
  /** A `msg.new` arrived more than one above the room's cursor: fetch the hole over REST. */
  onGap(fn) {
    this.gapListeners.add(fn);
    return () => this.gapListeners.delete(fn);
  }
  // ----- cursors ------------------------------------------------------------------
  get cursors() {
    return { cursors: this.seqs.snapshot(), evs: this.evs.snapshot() };
  }
  /** The app loaded a room's history up to `seq` (and change events up to `ev`) over REST. */
  markLoaded(room, seq, ev) {
    this.seqs.advance(room, seq);
    if (ev !== void 0) this.evs.advance(room, ev);
    this.cursorsMoved();
  }
  // ----- requests -----------------------------------------------------------------
  /**
   * Send a request and wait for its reply. `err` rejects with ServerError.
   * Idempotent requests (with a `cid`) are resent until answered; the others
   * reject with RequestTimeoutError or ConnectionClosedError.
   */
  request(frame) {
    if (this.stopped || this.status.state === "closed") {
      return Promise.reject(new ConnectionClosedError(this.status.code ?? NORMAL, "not connected"));
    }
    return new Promise((resolve, reject) => {
      const entry = {
        frame,
        idempotent: IDEMPOTENT.has(frame.t),
        resolve,
        reject,
        id: null,
        timer: null,
        attempt: 0
      };
      this.pending.add(entry);
      if (this.status.state === "open") this.transmit(entry);
      else if (!entry.idempotent && this.status.state !== "connecting" && this.status.state !== "reconnecting") {
        this.settle(entry);
        reject(new ConnectionClosedError(this.status.code ?? ABNORMAL, "not connected"));
      }
    });
  }
  /** Post a message; resolves with the stored message (seq, ts) once durably stored. */
  async send(room, text, extra = {}) {
    const d = { room, text, ...extra, cid: extra.cid ?? this.newCid() };
    const reply = await this.request({ t: "msg.send", d });
    if (!reply.d) throw new ClientError("msg.send answered without the message");
    return reply.d;
  }
  async ping() {
    return (await this.request({ t: "ping" })).ts;
  }
  /**
   * Give the open session a fresh access token (`auth`) before the current
   * one expires, so the server does not close it with 4004. Later reconnects
   * say hello with this token too. Rejects with the server's `err`
   * (`token_expired`, `unauthorized`, `forbidden`); the old token then stays.
   */
  async reauthenticate(token) {
    await this.request({ t: "auth", d: { token } });
    this.token = token;
  }
  // ----- connection internals -------------------------------------------------------
  async open() {
    if (this.stopped) return;
    this.setStatus({ state: this.attempt === 0 ? "connecting" : "reconnecting" });
    try {
      if (this.token === null) {
        const t = this.opts.token;
        this.token = typeof t === "string" ? t : await t();
      }
    } catch (error) {
      this.scheduleReconnect(ABNORMAL, `token: ${String(error)}`);
      return;
    }
    if (this.stopped) return;
    let ws;
    try {
      ws = (this.opts.webSocket ?? defaultWebSocket)(this.opts.url);
    } catch (error) {
      this.scheduleReconnect(ABNORMAL, String(error));
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.helloId = this.nextId++;
      const { cursors, evs } = this.cursors;
      const hello = {
        t: "hello",
        id: this.helloId,
        d: { token: this.token ?? "", v: PROTOCOL_VERSION, device: this.opts.device ?? "web", cursors, evs }
      };
      ws.send(encode(hello));
    };
    ws.onmessage = (ev) => this.onData(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      detach(ws);
      this.ws = null;
      this.onClosed(ev.code, ev.reason);
    };
    ws.onerror = () => void 0;
    this.helloTimer = this.timers.setTimeout(() => this.drop("no welcome in time"), this.requestTimeout);
  }
  get requestTimeout() {
    return this.opts.requestTimeout ?? 1e4;
  }
  onData(data) {
    this.lastRx = this.timers.now();
    if (typeof data === "string") return;
    let frame;
    try {
      frame = decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
    } catch {
      this.drop("undecodable frame");
      return;
    }
    if (!isObject(frame) || typeof frame.t !== "string") return;
    const f = frame;
    if (f.t === "welcome" && f.re === this.helloId) {
      this.onWelcome(f.d);
      return;
    }
    const re = frame.re;
    if (typeof re === "number") {
      const entry = this.byId.get(re);
      if (entry) {
        this.onReply(entry, f);
        return;
      }
    }
    this.onPush(f);
  }
  onWelcome(welcome) {
    this.timers.clearTimeout(this.helloTimer);
    this.welcome = welcome;
    this.attempt = 0;
    this.refreshed = false;
    this.setStatus({ state: "open" });
    this.emit({ t: "welcome", re: this.helloId, d: welcome });
    for (const entry of [...this.pending]) if (entry.id === null) this.transmit(entry);
    this.scheduleBeat();
  }
  onReply(entry, reply) {
    this.byId.delete(entry.id ?? -1);
    this.timers.clearTimeout(entry.timer);
    entry.id = null;
    if (reply.t === "err") {
      const err = reply;
      if (entry.idempotent && RETRYABLE.has(err.code)) {
        this.retryLater(entry);
        return;
      }
      this.settle(entry);
      entry.reject(new ServerError(err.code, err.msg));
      return;
    }
    this.settle(entry);
    if (reply.t === "ok") this.noteOwn(entry.frame, reply);
    entry.resolve(reply);
  }
  /** Our own stored messages and changes count as seen: their replay is a duplicate. */
  noteOwn(frame, ok) {
    for (const m of [...ok.d ? [ok.d] : [], ...ok.ms ?? []]) this.seqs.see(m.room, m.seq);
    if (typeof ok.ev === "number" && "d" in frame && isObject(frame.d) && typeof frame.d.room === "string") {
      this.evs.see(frame.d.room, ok.ev);
    }
    this.cursorsMoved();
  }
  onPush(frame) {
    switch (frame.t) {
      case "msg.new": {
        const { room, seq } = frame.d;
        const ahead = this.seqs.isAhead(room, seq);
        if (!this.seqs.see(room, seq)) return;
        if (ahead) for (const fn of this.gapListeners) fn({ room, after: seq - 1, seq });
        this.cursorsMoved();
        break;
      }
      case "resume.gap":
        this.seqs.advance(frame.d.room, frame.d.last_seq);
        if (frame.d.last_ev) this.evs.advance(frame.d.room, frame.d.last_ev);
        this.cursorsMoved();
        break;
      case "resume.done":
        for (const [room, n] of Object.entries(frame.d.rooms ?? {})) this.seqs.advance(room, n);
        for (const [room, n] of Object.entries(frame.d.evs ?? {})) this.evs.advance(room, n);
        this.cursorsMoved();
        break;
      default:
        if (CHANGES.has(frame.t)) {
          const d = frame.d;
          if (d.ev) {
            if (!this.evs.see(d.room, d.ev)) return;
            this.cursorsMoved();
          }
        }
    }
    this.emit(frame);
  }
  emit(frame) {
    for (const key of [frame.t, "*"]) {
      for (const fn of [...this.listeners.get(key) ?? []]) {
        try {
          fn(frame);
        } catch (error) {
          console.error("realtime client listener failed", error);
        }
      }
    }
  }
  onClosed(code, reason) {
    this.clearTimers();
    this.pinging = false;
    for (const entry of [...this.pending]) {
      if (entry.id === null) continue;
      this.byId.delete(entry.id);
      this.timers.clearTimeout(entry.timer);
      entry.id = null;
      if (!entry.idempotent) {
        this.settle(entry);
        entry.reject(new ConnectionClosedError(code, reason));
      }
    }
    if (this.stopped) return;
    if (code === TOKEN_EXPIRED && this.opts.refreshToken && !this.refreshed) {
      this.refreshed = true;
      this.setStatus({ state: "reconnecting", code, reason, retryIn: 0 });
      this.opts.refreshToken().then(
        (token) => {
          this.token = token;
          void this.open();
        },
        () => this.terminal(code, reason)
      );
      return;
    }
    if (isTerminal(code)) {
      this.terminal(code, reason);
      return;
    }
    this.scheduleReconnect(code, reason);
  }
  terminal(code, reason) {
    this.stopped = true;
    this.failAll(new ConnectionClosedError(code, reason), true);
    this.setStatus({ state: "closed", code, reason });
  }
  scheduleReconnect(code, reason) {
    const { initial, max, jitter } = this.backoff;
    const delay = Math.min(max, initial * 2 ** this.attempt);
    const retryIn = Math.round(delay * (1 - jitter * this.random()));
    this.attempt += 1;
    if (typeof this.opts.token !== "string") this.token = null;
    this.setStatus({ state: "reconnecting", code, reason, retryIn });
    this.reconnectTimer = this.timers.setTimeout(() => void this.open(), retryIn);
  }
  transmit(entry) {
    const ws = this.ws;
    if (!ws || this.status.state !== "open") return;
    const id = this.nextId++;
    entry.id = id;
    entry.attempt += 1;
    this.byId.set(id, entry);
    entry.timer = this.timers.setTimeout(() => this.onTimeout(entry, id), this.requestTimeout);
    ws.send(encode({ ...entry.frame, id }));
  }
  onTimeout(entry, id) {
    if (entry.id !== id) return;
    this.byId.delete(id);
    entry.id = null;
    if (entry.idempotent) {
      this.retryLater(entry);
      return;
    }
    this.settle(entry);
    entry.reject(new RequestTimeoutError(entry.frame.t));
  }
  retryLater(entry) {
    const { initial, max, jitter } = this.backoff;
    const delay = Math.min(max, initial * 2 ** (entry.attempt - 1));
    entry.timer = this.timers.setTimeout(
      () => {
        if (this.pending.has(entry) && entry.id === null) this.transmit(entry);
      },
      Math.round(delay * (1 - jitter * this.random()))
    );
  }
  settle(entry) {
    this.pending.delete(entry);
    if (entry.id !== null) this.byId.delete(entry.id);
    this.timers.clearTimeout(entry.timer);
  }
  failAll(error, idempotentToo) {
    for (const entry of [...this.pending]) {
      if (!entry.idempotent || idempotentToo) {
        this.settle(entry);
        entry.reject(error);
      }
    }
  }
  // ----- heartbeats -------------------------------------------------------------
  scheduleBeat() {
    const heartbeat = (this.welcome?.heartbeat ?? 20) * 1e3;
    this.lastRx = this.timers.now();
    const check = () => {
      if (this.status.state !== "open") return;
      const silent = this.timers.now() - this.lastRx;
      if (!this.pinging && silent >= 2 * heartbeat) {
        this.pinging = true;
        this.pingWithin(this.opts.pongTimeout ?? 5e3);
      }
      this.beatTimer = this.timers.setTimeout(check, heartbeat / 2);
    };
    this.beatTimer = this.timers.setTimeout(check, heartbeat / 2);
  }
  pingWithin(ms) {
    const ws = this.ws;
    let answered = false;
    const timer = this.timers.setTimeout(() => {
      if (!answered && this.ws === ws) this.drop("no pong");
    }, ms);
    this.ping().then(
      () => {
        answered = true;
        this.pinging = false;
        this.timers.clearTimeout(timer);
      },
      () => {
        this.pinging = false;
        this.timers.clearTimeout(timer);
      }
    );
  }
  // ----- helpers ----------------------------------------------------------------
  clearTimers() {
    for (const t of [this.reconnectTimer, this.helloTimer, this.beatTimer]) this.timers.clearTimeout(t);
    this.reconnectTimer = this.helloTimer = this.beatTimer = null;
  }
  setStatus(status) {
    this.status = status;
    for (const fn of [...this.statusListeners]) fn(status);
  }
  cursorsMoved() {
    this.opts.onCursors?.(this.cursors);
  }
};
function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}

// src/api.ts
var ApiError = class extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  status;
  code;
};
var KEY = "rt.session";
function loadSession() {
  const raw2 = sessionStorage.getItem(KEY);
  return raw2 ? JSON.parse(raw2) : null;
}
function saveSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}
async function raw(path, init = {}) {
  return fetch(path, init);
}
async function failure(r) {
  try {
    const body = await r.json();
    return new ApiError(r.status, body.error?.code ?? "internal", body.error?.message ?? r.statusText);
  } catch {
    return new ApiError(r.status, "internal", r.statusText);
  }
}
async function authenticate(mode, fields) {
  const body = mode === "login" ? { login: fields.username, password: fields.password, device: "web" } : { username: fields.username, email: fields.email, password: fields.password, device: "web" };
  const r = await raw(`/auth/${mode}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body)
  });
  if (!r.ok) throw await failure(r);
  const auth = await r.json();
  const s = { user: auth.user, access: auth.access_token, refresh: auth.refresh_token };
  saveSession(s);
  return s;
}
var Api = class {
  constructor(session) {
    this.session = session;
  }
  session;
  /** A fresh access token from the refresh token (rotated: keep the new one). */
  async refresh() {
    const r = await raw("/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: this.session.refresh })
    });
    if (!r.ok) throw await failure(r);
    const auth = await r.json();
    this.session = { user: this.session.user, access: auth.access_token, refresh: auth.refresh_token };
    saveSession(this.session);
    return this.session.access;
  }
  async call(path, init = {}, retried = false) {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.session.access}`);
    const r = await raw(path, { ...init, headers });
    if (r.status === 401 && !retried) {
      const err = await failure(r.clone());
      if (err.code === "token_expired") {
        await this.refresh();
        return this.call(path, init, true);
      }
    }
    if (!r.ok) throw await failure(r);
    return r;
  }
  async json(path, body, method) {
    const init = body === void 0 ? { method: method ?? "GET" } : { method: method ?? "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    const r = await this.call(path, init);
    return r.status === 204 ? {} : await r.json();
  }
  async blobUrl(path) {
    const r = await this.call(path);
    return URL.createObjectURL(await r.blob());
  }
  async upload(file) {
    const form = new FormData();
    form.append("file", file);
    const r = await this.call("/media", { method: "POST", body: form });
    return (await r.json()).media.id;
  }
};

// src/call.ts
var Calls = class {
  constructor(client2, me2, ui) {
    this.client = client2;
    this.me = me2;
    this.ui = ui;
    client2.on("call.ring", (f) => {
      if (this.call && this.call.id !== f.d.id) return;
      this.call = f.d;
      this.ice = f.d.ice_servers ?? [];
      this.ui.ringing(f.d);
      this.ui.status("incoming call");
    });
    client2.on("call.state", (f) => void this.onState(f.d.event, f.d.user ?? null, f.d.call));
    client2.on("call.remote.sdp", (f) => void this.onSdp(f.d.from, f.d.type, f.d.sdp));
    client2.on("call.remote.ice", (f) => {
      const init = {
        candidate: f.d.candidate,
        sdpMid: f.d.sdp_mid ?? null,
        sdpMLineIndex: f.d.sdp_mline_index ?? null,
        usernameFragment: f.d.ufrag ?? null
      };
      const pc = this.peers.get(f.d.from);
      if (pc?.remoteDescription) void pc.addIceCandidate(init).catch(() => void 0);
      else this.queued.set(f.d.from, [...this.queued.get(f.d.from) ?? [], init]);
    });
  }
  client;
  me;
  ui;
  call = null;
  ice = [];
  peers = /* @__PURE__ */ new Map();
  queued = /* @__PURE__ */ new Map();
  local = null;
  async start(room) {
    const reply = await this.client.request({ t: "call.start", d: { room, kind: "audio" } });
    this.call = reply.d;
    this.ice = reply.d.ice_servers ?? [];
    this.ui.inCall(true);
    this.ui.status("ringing\u2026");
  }
  async accept() {
    if (!this.call) return;
    this.ui.ringing(null);
    const reply = await this.client.request({ t: "call.accept", d: { call: this.call.id } });
    this.call = reply.d;
    this.ui.inCall(true);
    this.ui.status("connecting\u2026");
  }
  async decline() {
    if (!this.call) return;
    this.ui.ringing(null);
    await this.client.request({ t: "call.decline", d: { call: this.call.id } });
  }
  async hangup() {
    if (!this.call) return;
    const id = this.call.id;
    this.end("ended");
    await this.client.request({ t: "call.hangup", d: { call: id } }).catch(() => void 0);
  }
  async onState(event, user, call) {
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
  async media() {
    this.local ??= await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    return this.local;
  }
  async peer(user) {
    const existing = this.peers.get(user);
    if (existing) return existing;
    const pc = new RTCPeerConnection({
      iceServers: this.ice.map((s) => ({
        urls: s.urls,
        ...s.username ? { username: s.username } : {},
        ...s.credential ? { credential: s.credential } : {}
      }))
    });
    this.peers.set(user, pc);
    for (const track of (await this.media()).getTracks()) pc.addTrack(track, this.local);
    pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      if (!c || !c.candidate || !this.call) return;
      void this.client.request({
        t: "call.ice",
        d: {
          call: this.call.id,
          to: user,
          candidate: c.candidate,
          sdp_mid: c.sdpMid,
          sdp_mline_index: c.sdpMLineIndex,
          ufrag: c.usernameFragment
        }
      }).catch(() => void 0);
    };
    pc.onconnectionstatechange = () => this.ui.status(pc.connectionState);
    pc.ontrack = (ev) => {
      const stream = ev.streams[0];
      if (stream) this.ui.remoteStream(stream);
    };
    return pc;
  }
  async flushIce(user, pc) {
    for (const init of this.queued.get(user) ?? []) await pc.addIceCandidate(init).catch(() => void 0);
    this.queued.delete(user);
  }
  async offer(user) {
    if (!this.call) return;
    const pc = await this.peer(user);
    await pc.setLocalDescription(await pc.createOffer());
    this.ui.status("connecting\u2026");
    await this.client.request({
      t: "call.sdp",
      d: { call: this.call.id, to: user, type: "offer", sdp: pc.localDescription?.sdp ?? "" }
    });
  }
  async onSdp(from, type, sdp) {
    if (!this.call) return;
    const pc = await this.peer(from);
    await pc.setRemoteDescription({ type, sdp });
    await this.flushIce(from, pc);
    if (type === "offer") {
      await pc.setLocalDescription(await pc.createAnswer());
      await this.client.request({
        t: "call.sdp",
        d: { call: this.call.id, to: from, type: "answer", sdp: pc.localDescription?.sdp ?? "" }
      });
    }
  }
  end(text) {
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
};

// src/main.ts
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}
var api;
var client;
var calls;
var me;
var rooms = /* @__PURE__ */ new Map();
var names = /* @__PURE__ */ new Map();
var online = /* @__PURE__ */ new Map();
var current = null;
var shown = /* @__PURE__ */ new Map();
var oldest = 0;
var peerRead = /* @__PURE__ */ new Map();
var typingNow = /* @__PURE__ */ new Map();
var streams = /* @__PURE__ */ new Map();
var replyTo = null;
var editing = null;
var lastTyping = 0;
var cursorKey = (user) => `rt.cursors.${user}`;
window.addEventListener("DOMContentLoaded", () => {
  bindAuth();
  const session = loadSession();
  if (session) void start(session);
  else showAuth();
});
function showAuth() {
  $("auth").hidden = false;
  $("main").hidden = true;
}
function bindAuth() {
  const form = $("auth-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const mode = ev.submitter?.value === "register" ? "register" : "login";
    const data = Object.fromEntries(new FormData(form));
    $("auth-error").textContent = "";
    authenticate(mode, data).then(
      (s) => void start(s),
      (e) => $("auth-error").textContent = e instanceof Error ? e.message : String(e)
    );
  });
  $("sign-out").addEventListener("click", () => {
    void api.json("/auth/logout", { refresh_token: api.session.refresh }).catch(() => void 0);
    client.close();
    saveSession(null);
    location.reload();
  });
}
async function start(session) {
  api = new Api(session);
  me = session.user;
  names.set(me.id, me.display_name || me.username || me.id);
  $("auth").hidden = true;
  $("main").hidden = false;
  $("me").textContent = names.get(me.id) ?? "";
  const saved = localStorage.getItem(cursorKey(me.id));
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  client = new RealtimeClient({
    url: wsUrl,
    token: () => api.session.access,
    refreshToken: () => api.refresh(),
    device: `web-${Math.random().toString(36).slice(2, 8)}`,
    ...saved ? { cursors: JSON.parse(saved) } : {},
    onCursors: (c) => localStorage.setItem(cursorKey(me.id), JSON.stringify(c))
  });
  calls = new Calls(client, () => me.id, {
    status: (text) => $("call-status").textContent = text,
    ringing: (call) => {
      $("incoming").hidden = call === null;
      if (!call) return;
      const show = () => $("incoming-text").textContent = `${nameOf(call.caller)} is calling\u2026`;
      show();
      if (!names.has(call.caller)) void loadName(call.caller).then(show);
      if (!rooms.has(call.room)) void loadRooms();
    },
    inCall: (active) => {
      $("hangup").hidden = !active;
      $("call").hidden = active;
    },
    remoteStream: (stream) => $("remote-audio").srcObject = stream
  });
  bindChat();
  listen();
  client.onStatus(showStatus);
  try {
    await client.connect();
  } catch (e) {
    if (e instanceof Error && /410[14]/.test(e.message)) {
      saveSession(null);
      showAuth();
    }
  }
}
function showStatus(s) {
  const el = $("conn");
  el.className = `conn ${s.state}`;
  el.textContent = s.state === "reconnecting" ? "reconnecting\u2026" : s.state === "open" ? "online" : s.state;
}
function listen() {
  client.on("welcome", () => void onWelcome());
  client.on("msg.new", (f) => onMessage(f.d, false));
  client.on("msg.edited", (f) => {
    const s = f.d.room === current ? shown.get(f.d.seq) : void 0;
    if (s) {
      s.msg = { ...s.msg, text: f.d.text, edited: f.d.at };
      render(s);
    }
  });
  client.on("msg.deleted", (f) => {
    if (f.d.room !== current) return;
    const s = shown.get(f.d.seq);
    if (!s) return;
    if (f.d.me) {
      shown.delete(f.d.seq);
      document.querySelector(`[data-seq="${f.d.seq}"]`)?.remove();
    } else {
      s.msg = { ...s.msg, deleted: true, text: "" };
      render(s);
    }
  });
  client.on("msg.reaction", (f) => {
    const s = f.d.room === current ? shown.get(f.d.seq) : void 0;
    if (!s) return;
    applyReaction(s, f.d.emoji, f.d.user, !f.d.off);
    render(s);
  });
  client.on("rcpt.update", (f) => {
    const d = f.d;
    if (d.user === me.id) {
      const room = rooms.get(d.room);
      if (room && typeof d.unread === "number") {
        room.unread = d.unread;
        renderRooms();
      }
      return;
    }
    const byUser = peerRead.get(d.room) ?? /* @__PURE__ */ new Map();
    byUser.set(d.user, { read: d.read, dlv: Math.max(d.dlv, d.read) });
    peerRead.set(d.room, byUser);
    if (d.room === current) {
      for (const s of shown.values()) if (s.msg.sender === me.id) render(s);
    }
  });
  client.on("typing", (f) => {
    const byUser = typingNow.get(f.d.room) ?? /* @__PURE__ */ new Map();
    if (f.d.on) byUser.set(f.d.user, Date.now() + 6e3);
    else byUser.delete(f.d.user);
    typingNow.set(f.d.room, byUser);
    renderTyping();
  });
  client.on("presence", (f) => {
    online.set(f.d.user, f.d);
    renderPresence();
    renderRooms();
  });
  client.on("ai.start", (f) => {
    if (streams.has(f.d.gen)) return;
    const el = h("li", { class: "msg ai", "data-testid": "ai-stream" }, h("div", { class: "who" }, f.d.model), h("div", { class: "body" }));
    streams.set(f.d.gen, { room: f.d.room, el, n: 0 });
    if (f.d.room === current) {
      $("messages").append(el);
      $("stop").hidden = false;
      $("stop").dataset.gen = f.d.gen;
      scrollDown();
    }
  });
  client.on("ai.delta", (f) => {
    const s = streams.get(f.d.gen);
    if (!s || f.d.i < s.n) return;
    s.n = f.d.i + 1;
    s.el.querySelector(".body")?.append(f.d.text);
    scrollDown();
  });
  for (const t of ["ai.done", "ai.error"]) {
    client.on(t, (f) => {
      const s = streams.get(f.d.gen);
      streams.delete(f.d.gen);
      s?.el.remove();
      if ($("stop").dataset.gen === f.d.gen) $("stop").hidden = true;
      if (f.d.msg) onMessage(f.d.msg, false);
      if (f.t === "ai.error") alertLine(`AI: ${f.d.text}`);
    });
  }
  client.onGap((g) => {
    if (g.room === current) void loadAfter(g.room, g.after - 1);
  });
  setInterval(renderTyping, 1e3);
}
async function onWelcome() {
  await loadRooms();
  const users = /* @__PURE__ */ new Set();
  for (const r of rooms.values()) for (const m of r.members) if (m.user_id !== me.id) users.add(m.user_id);
  if (users.size) {
    const reply = await client.request({ t: "presence.get", d: { users: [...users].slice(0, 100) } });
    for (const s of reply.d.users ?? []) online.set(s.user, s);
    renderRooms();
    renderPresence();
  }
  if (current) await loadAfter(current, Math.max(0, ...shown.keys()));
}
function onMessage(msg, fromHistory) {
  const room = rooms.get(msg.room);
  if (room) {
    room.last_message = msg;
    room.last_seq = Math.max(room.last_seq, msg.seq);
  }
  if (msg.room === current) {
    if (!shown.has(msg.seq)) {
      const s = { msg, reactions: /* @__PURE__ */ new Map() };
      shown.set(msg.seq, s);
      insert(s);
      scrollDown();
    }
    if (!fromHistory && msg.sender !== me.id && document.visibilityState === "visible") markRead(msg.room, msg.seq);
  } else if (!fromHistory && msg.sender !== me.id) {
    if (room) room.unread += 1;
    else void loadRooms();
    void client.request({ t: "rcpt", d: { room: msg.room, dlv: msg.seq } }).catch(() => void 0);
  }
  renderRooms();
}
function markRead(room, seq) {
  const r = rooms.get(room);
  if (r) r.unread = 0;
  void client.request({ t: "rcpt", d: { room, read: seq } }).catch(() => void 0);
}
async function loadRooms() {
  const list = await api.json("/rooms?limit=200");
  for (const r of list.rooms) rooms.set(r.id, r);
  await Promise.all(
    list.rooms.flatMap((r) => r.members.map((m) => m.user_id)).filter((u) => !names.has(u)).map(loadName)
  );
  renderRooms();
}
async function loadName(user) {
  try {
    const u = await api.json(`/users/${encodeURIComponent(user)}`);
    names.set(user, u.display_name || u.username || user);
  } catch {
    names.set(user, user);
  }
}
function nameOf(user) {
  if (user.startsWith("ai:")) return user.slice(3);
  return names.get(user) ?? user;
}
function titleOf(r) {
  if (r.kind === "ai") return r.name || "AI conversation";
  if (r.kind === "group") return r.name;
  const other = r.members.find((m) => m.user_id !== me.id);
  return other ? nameOf(other.user_id) : "Just you";
}
function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  const sorted = [...rooms.values()].sort((a, b) => (b.last_message?.ts ?? 0) - (a.last_message?.ts ?? 0));
  for (const r of sorted) {
    const other = r.kind === "direct" ? r.members.find((m) => m.user_id !== me.id) : void 0;
    const dot = h("span", { class: `dot${other && online.get(other.user_id)?.online ? " on" : ""}` });
    const last = r.last_message ? preview(r.last_message) : "";
    const li = h(
      "li",
      { "data-testid": "room", "data-room": r.id, class: r.id === current ? "active" : "" },
      dot,
      h("span", { class: "name" }, titleOf(r), h("span", { class: "last" }, last))
    );
    if (r.unread > 0 && r.id !== current) li.append(h("span", { class: "unread", "data-testid": "unread" }, String(r.unread)));
    li.addEventListener("click", () => void openRoom(r.id));
    list.append(li);
  }
}
function preview(m) {
  if (m.deleted) return "deleted";
  if (m.kind === "image") return "\u{1F4F7} Photo";
  return m.text.slice(0, 60);
}
async function openRoom(id) {
  current = id;
  shown = /* @__PURE__ */ new Map();
  replyTo = editing = null;
  $("replying").hidden = true;
  $("messages").replaceChildren();
  $("empty").hidden = true;
  $("chat").hidden = false;
  const room = rooms.get(id);
  $("room-title").textContent = room ? titleOf(room) : id;
  $("call").hidden = room?.kind !== "direct";
  $("stop").hidden = true;
  renderPresence();
  renderTyping();
  const page = await api.json(`/rooms/${id}/history?limit=30`);
  if (current !== id) return;
  showPage(page.messages);
  $("older").hidden = !page.has_more;
  const last = page.messages.at(-1);
  if (last) {
    client.markLoaded(id, last.seq);
    markRead(id, last.seq);
  }
  for (const s of streams.values()) if (s.room === id) $("messages").append(s.el);
  renderRooms();
  scrollDown();
  if (room?.kind === "ai") void client.request({ t: "ai.attach", d: { room: id, from: 0 } }).catch(() => void 0);
  $("text").focus();
}
function showPage(messages) {
  for (const m of messages) {
    const s = { msg: m, reactions: /* @__PURE__ */ new Map() };
    for (const r of m.reactions ?? []) s.reactions.set(r.e, { n: r.n, me: r.me ?? false });
    shown.set(m.seq, s);
    insert(s);
  }
  oldest = Math.min(...shown.keys());
}
async function loadOlder() {
  if (!current) return;
  const page = await api.json(
    `/rooms/${current}/history?limit=30&before=${oldest}`
  );
  showPage(page.messages);
  $("older").hidden = !page.has_more;
}
async function loadAfter(room, after) {
  const page = await api.json(`/rooms/${room}/history?limit=200&after=${after}`);
  for (const m of page.messages) onMessage(m, true);
  const last = page.messages.at(-1);
  if (last && room === current) markRead(room, last.seq);
}
function insert(s) {
  const list = $("messages");
  const el = render(s);
  const after = [...list.children].find((c) => Number(c.dataset.seq) > s.msg.seq);
  if (!el.isConnected) list.insertBefore(el, after ?? null);
}
function receipt(m) {
  const byUser = peerRead.get(m.room);
  let state = "sent";
  for (const c of byUser?.values() ?? []) {
    if (c.read >= m.seq) return "read";
    if (c.dlv >= m.seq) state = "delivered";
  }
  return state;
}
function render(s) {
  const m = s.msg;
  const existing = document.querySelector(`#messages [data-seq="${m.seq}"]`);
  const mine = m.sender === me.id;
  const kind = m.kind ?? "text";
  const el = h("li", {
    class: `msg${mine ? " mine" : ""}${kind === "ai" ? " ai" : ""}${kind === "system" ? " system" : ""}`,
    "data-seq": String(m.seq),
    "data-testid": "message"
  });
  if (!mine && kind !== "system") el.append(h("div", { class: "who" }, nameOf(m.sender)));
  if (m.reply) el.append(h("div", { class: "quote" }, `${nameOf(m.reply.sender)}: ${m.reply.deleted ? "deleted" : m.reply.text}`));
  const body = h("div", { class: "body", "data-testid": "text" });
  if (m.deleted) body.append(h("span", { class: "deleted" }, "This message was deleted"));
  else {
    if (kind === "image" && m.media) {
      const img = h("img", { alt: "image", "data-testid": "image" });
      void api.blobUrl(`/media/${m.media}/thumbnail`).then(
        (url) => img.src = url,
        () => api.blobUrl(`/media/${m.media}`).then((url) => img.src = url)
      );
      body.append(img);
    }
    if (kind === "system") body.append(systemText(m.text));
    else body.append(m.text);
  }
  el.append(body);
  const reactions = h("div", { class: "reactions", "data-testid": "reactions" });
  for (const [e, r] of s.reactions) if (r.n > 0) reactions.append(h("span", { title: r.me ? "you reacted" : "" }, `${e} ${r.n}`));
  el.append(reactions);
  const meta = h("div", { class: "meta" }, new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  if (m.edited && !m.deleted) meta.append(h("span", { "data-testid": "edited" }, "edited"));
  if (mine && kind !== "system") meta.append(h("span", { "data-testid": "receipt" }, receipt(m)));
  if (!m.deleted && kind !== "system") {
    const actions = h("span", { class: "actions" });
    const button = (label, testid, fn) => {
      const b = h("button", { type: "button", "data-testid": testid, title: testid }, label);
      b.addEventListener("click", fn);
      actions.append(b);
    };
    button("\u{1F44D}", "react", () => void react(s, "\u{1F44D}"));
    button("\u21A9", "reply", () => startReply(m));
    if (mine && kind === "text") button("\u270E", "edit", () => startEdit(m));
    if (mine) button("\u{1F5D1}", "delete", () => void remove(m));
    meta.append(actions);
  }
  el.append(meta);
  if (existing) existing.replaceWith(el);
  return el;
}
function systemText(text) {
  try {
    const ev = JSON.parse(text);
    return ev.ev ? ev.ev.replace(".", " ") : text;
  } catch {
    return text;
  }
}
function applyReaction(s, emoji, user, on) {
  const r = s.reactions.get(emoji) ?? { n: 0, me: false };
  r.n = Math.max(0, r.n + (on ? 1 : -1));
  if (user === me.id) r.me = on;
  s.reactions.set(emoji, r);
}
async function react(s, emoji) {
  const off = s.reactions.get(emoji)?.me ?? false;
  const ok = await client.request({ t: "msg.react", d: { room: s.msg.room, seq: s.msg.seq, emoji, off } });
  if (ok.ev) applyReaction(s, emoji, me.id, !off);
  render(s);
}
function startReply(m) {
  replyTo = m;
  editing = null;
  $("replying").hidden = false;
  $("replying-text").textContent = `Replying to ${nameOf(m.sender)}: ${m.text.slice(0, 60)}`;
  $("text").focus();
}
function startEdit(m) {
  editing = m;
  replyTo = null;
  $("replying").hidden = false;
  $("replying-text").textContent = "Editing your message";
  $("text").value = m.text;
  $("text").focus();
}
async function remove(m) {
  await client.request({ t: "msg.delete", d: { room: m.room, seq: m.seq, all: true } });
  const s = shown.get(m.seq);
  if (s) {
    s.msg = { ...s.msg, deleted: true, text: "" };
    render(s);
  }
}
function renderTyping() {
  const now = Date.now();
  const byUser = current ? typingNow.get(current) : void 0;
  const who = [...byUser?.entries() ?? []].filter(([u, exp]) => exp > now && u !== me.id).map(([u]) => nameOf(u));
  $("typing").textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing\u2026` : "";
}
function renderPresence() {
  const room = current ? rooms.get(current) : void 0;
  const other = room?.kind === "direct" ? room.members.find((m) => m.user_id !== me.id) : void 0;
  const p = other ? online.get(other.user_id) : void 0;
  $("room-presence").textContent = !p ? "" : p.online ? "online" : p.last_seen ? `last seen ${new Date(p.last_seen).toLocaleTimeString()}` : "offline";
}
function alertLine(text) {
  $("messages").append(h("li", { class: "msg system" }, text));
}
function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}
function bindChat() {
  const text = $("text");
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submit(text.value);
  });
  text.addEventListener("input", () => {
    if (!current || rooms.get(current)?.kind === "ai") return;
    const now = Date.now();
    if (text.value && now - lastTyping > 3e3) {
      lastTyping = now;
      void client.request({ t: "typing.start", d: { room: current } }).catch(() => void 0);
    } else if (!text.value && lastTyping) {
      lastTyping = 0;
      void client.request({ t: "typing.stop", d: { room: current } }).catch(() => void 0);
    }
  });
  $("cancel-reply").addEventListener("click", () => {
    replyTo = editing = null;
    $("replying").hidden = true;
  });
  $("older").addEventListener("click", () => void loadOlder());
  $("file").addEventListener("change", (ev) => void sendImage(ev.target));
  $("stop").addEventListener("click", () => {
    const gen = $("stop").dataset.gen;
    if (gen) void client.request({ t: "ai.stop", d: { gen } }).catch(() => void 0);
  });
  $("new-chat").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void newChat($("new-chat").querySelector("input")?.value ?? "");
  });
  $("new-ai").addEventListener("click", () => void newAi());
  $("call").addEventListener("click", () => current && void calls.start(current).catch((e) => $("call-status").textContent = String(e)));
  $("hangup").addEventListener("click", () => void calls.hangup());
  $("accept-call").addEventListener("click", () => void acceptCall());
  $("decline-call").addEventListener("click", () => void calls.decline());
  document.addEventListener("visibilitychange", () => {
    const last = Math.max(0, ...shown.keys());
    if (current && last && document.visibilityState === "visible") markRead(current, last);
  });
}
async function acceptCall() {
  const room = calls.call?.room;
  if (room && room !== current) await openRoom(room);
  await calls.accept();
}
async function submit(value) {
  const room = current;
  const text = value.trim();
  if (!room || !text) return;
  $("text").value = "";
  if (lastTyping) {
    lastTyping = 0;
    void client.request({ t: "typing.stop", d: { room } }).catch(() => void 0);
  }
  if (editing) {
    const m = editing;
    editing = null;
    $("replying").hidden = true;
    await client.request({ t: "msg.edit", d: { room, seq: m.seq, text } });
    const s = shown.get(m.seq);
    if (s) {
      s.msg = { ...s.msg, text, edited: Date.now() };
      render(s);
    }
    return;
  }
  const reply = replyTo?.seq;
  replyTo = null;
  $("replying").hidden = true;
  if (rooms.get(room)?.kind === "ai") {
    const ok = await client.request({ t: "ai.ask", d: { room, cid: crypto.randomUUID(), text } });
    if (ok.d) onMessage(ok.d, false);
    return;
  }
  const msg = await client.send(room, text, reply ? { reply } : {});
  onMessage(msg, false);
}
async function sendImage(input) {
  const file = input.files?.[0];
  input.value = "";
  const room = current;
  if (!file || !room) return;
  const media = await api.upload(file);
  const msg = await client.send(room, "", { kind: "image", media });
  onMessage(msg, false);
}
async function newChat(who) {
  const q = who.trim();
  if (!q) return;
  const found = await api.json(
    `/users/search?q=${encodeURIComponent(q)}`
  );
  const user = found.users.find((u) => u.username === q) ?? found.users[0];
  if (!user) {
    alert(`No user called ${q}`);
    return;
  }
  names.set(user.id, user.display_name || user.username || user.id);
  $("new-chat").reset();
  const { room } = await api.json("/rooms", { kind: "direct", user_id: user.id });
  await loadRooms();
  const users = [user.id];
  void client.request({ t: "presence.get", d: { users } }).then((r) => {
    for (const s of r.d.users ?? []) online.set(s.user, s);
    renderPresence();
  });
  await openRoom(room.id);
}
async function newAi() {
  const { conversation } = await api.json("/ai/conversations", {
    title: "AI conversation"
  });
  await loadRooms();
  if (!rooms.has(conversation.id)) {
    rooms.set(conversation.id, {
      id: conversation.id,
      kind: "ai",
      name: conversation.title,
      members: [{ user_id: me.id }],
      unread: 0,
      last_seq: 0,
      last_message: null
    });
  }
  await openRoom(conversation.id);
}
window.addEventListener("unhandledrejection", (ev) => {
  const e = ev.reason;
  if (e instanceof ApiError || e instanceof Error) console.warn("realtime app:", e.message);
});
