// The parser ships no types; this is the part of its output the metrics tests read.
declare module 'parse-prometheus-text-format' {
  interface Sample {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export default function parsePrometheusTextFormat(
    text: string,
  ): Array<{ name: string; help: string; type: string; metrics: Sample[] }>;
}
