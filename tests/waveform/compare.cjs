// Loads a waveform served by vidaud with BBC's waveform-data (the library
// peaks.js reads waveforms with), and compares it block by block with peaks
// computed here, independently of vidaud, from the same audio decoded by
// ffmpeg (32-bit float PCM): each block of `samples_per_pixel` frames, the
// mean of the channels, floor(127 * x) clamped to -128..127, as
// waveform-data's own generator does.
//
// Usage: node compare.cjs WAVEFORM.json AUDIO.f32le CHANNELS
// Prints one JSON object: what waveform-data read, and how the two differ.
"use strict";

const fs = require("fs");
const WaveformData = require("waveform-data");

const [jsonPath, pcmPath, channelArg] = process.argv.slice(2);
const waveform = WaveformData.create(JSON.parse(fs.readFileSync(jsonPath, "utf8")));
// As peaks.js does for its zoom levels: it must resample cleanly.
const zoomed = waveform.resample({ scale: waveform.scale * 4 });

const raw = fs.readFileSync(pcmPath);
const samples = new Float32Array(raw.buffer, raw.byteOffset, Math.floor(raw.byteLength / 4));
const channels = Number(channelArg);
const frames = Math.floor(samples.length / channels);
const scale = waveform.scale;
const referenceLength = Math.ceil(frames / scale);

const value = (x) => Math.max(-128, Math.min(127, Math.floor(127 * x)));
const diffs = [];
const ours = waveform.channel(0);
for (let block = 0; block < Math.min(referenceLength, waveform.length); block++) {
  let min = Infinity;
  let max = -Infinity;
  const end = Math.min(frames, (block + 1) * scale);
  for (let frame = block * scale; frame < end; frame++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += samples[frame * channels + c];
    const v = value(sum / channels);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  diffs.push(Math.max(Math.abs(ours.min_sample(block) - min), Math.abs(ours.max_sample(block) - max)));
}
const sorted = [...diffs].sort((a, b) => a - b);
const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0);
console.log(
  JSON.stringify({
    length: waveform.length,
    reference_length: referenceLength,
    channels: waveform.channels,
    bits: waveform.bits,
    scale: waveform.scale,
    sample_rate: waveform.sample_rate,
    duration: waveform.duration,
    zoomed_length: zoomed.length,
    max_diff: sorted.length ? sorted[sorted.length - 1] : 0,
    p99_diff: at(0.99),
    mean_diff: diffs.reduce((a, b) => a + b, 0) / Math.max(1, diffs.length),
    exact: diffs.filter((d) => d === 0).length / Math.max(1, diffs.length),
  }),
);
