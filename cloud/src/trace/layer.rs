//! The [`tracing_subscriber::Layer`] that turns `tracing` spans into trace spans: W3C ids on
//! creation (inherited from the parent span, or from a `traceparent` field, or new), fields as
//! attributes, and the finished span queued for the exporter when it closes.

use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Span, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::{SINK, TRACEPARENT, TraceParent, enabled};

/// An attribute value, as OTLP types it.
#[derive(Debug, Clone)]
pub(super) enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
}

/// A span being recorded (in the registry's extensions) or finished (in the exporter's queue).
#[derive(Debug, Clone)]
pub(crate) struct FinishedSpan {
    pub(super) trace_id: [u8; 16],
    pub(super) span_id: [u8; 8],
    pub(super) parent_span_id: Option<[u8; 8]>,
    pub(super) name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub(super) kind: u8,
    pub(super) start: SystemTime,
    pub(super) end: SystemTime,
    pub(super) attributes: Vec<(&'static str, AttrValue)>,
    /// An `error` field was recorded, or a 5xx status.
    pub(super) error: bool,
}

/// Records spans for the exporter while tracing is on ([`super::start`]); does nothing before.
/// Installed in every role's subscriber, so turning tracing on needs no other wiring.
#[derive(Debug, Default, Clone, Copy)]
pub struct OtlpLayer;

impl<S> tracing_subscriber::Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = span.parent().and_then(|p| p.extensions().get::<FinishedSpan>().map(|d| (d.trace_id, d.span_id)));
        let remote = fields.traceparent.as_deref().and_then(TraceParent::parse).map(|t| (t.trace_id, t.span_id));
        // A local parent wins: a remote context only starts a process's part of the trace.
        let (trace_id, parent_span_id) = match parent.or(remote) {
            Some((trace, parent)) => (trace, Some(parent)),
            None => (random(), None),
        };
        let data = FinishedSpan {
            trace_id,
            span_id: random(),
            parent_span_id,
            name: fields.name.take().unwrap_or_else(|| span.name().to_owned()),
            kind: fields.kind,
            start: SystemTime::now(),
            end: SystemTime::now(),
            attributes: fields.attributes,
            error: fields.error,
        };
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<FinishedSpan>() else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        data.error |= fields.error;
        data.attributes.extend(fields.attributes);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<FinishedSpan>() else { return };
        data.end = SystemTime::now();
        if let Some(sink) = SINK.get() {
            // A full queue drops the span: the exporter must never hold up the work it traces.
            let _ = sink.try_send(data);
        }
    }
}

/// The current span's context as a `traceparent` value (this span as the parent of whatever
/// continues the trace), when tracing is on and a span is being recorded.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    context_of(&Span::current()).map(|tp| tp.to_header())
}

/// `span`'s own context (its trace and its id), when it is being recorded.
pub(super) fn context_of(span: &Span) -> Option<TraceParent> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        let extensions = span.extensions();
        let data = extensions.get::<FinishedSpan>()?;
        Some(TraceParent { trace_id: data.trace_id, span_id: data.span_id })
    })
    .flatten()
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // getrandom fails only where there is no OS entropy at all; a counter-free fallback keeps ids
    // non-zero (a zero id is invalid) rather than losing the span.
    if getrandom::getrandom(&mut out).is_err() || out == [0; N] {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        for (i, b) in out.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8 | 1;
        }
    }
    out
}

/// A span's fields: `otel.name` / `otel.kind` / `traceparent` are instructions to this layer,
/// every other one an attribute.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    kind: u8,
    traceparent: Option<String>,
    attributes: Vec<(&'static str, AttrValue)>,
    error: bool,
}

impl Fields {
    fn add(&mut self, field: &Field, value: AttrValue) {
        match (field.name(), &value) {
            ("otel.name", AttrValue::Str(s)) => self.name = Some(s.clone()),
            ("otel.kind", AttrValue::Str(s)) => {
                self.kind = match s.as_str() {
                    "server" => 2,
                    "client" => 3,
                    "producer" => 4,
                    "consumer" => 5,
                    _ => 1,
                }
            }
            (TRACEPARENT, AttrValue::Str(s)) => self.traceparent = Some(s.clone()).filter(|s| !s.is_empty()),
            // The span's own trace id, for the logs; OTLP has it already.
            ("trace_id", _) => {}
            (name, value) => {
                if name == "error" || (name == "http.response.status_code" && matches!(value, AttrValue::Int(500..))) {
                    self.error = true;
                }
                self.attributes.push((name, value.clone()));
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, AttrValue::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, AttrValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, AttrValue::Int(i64::try_from(value).unwrap_or(i64::MAX)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, AttrValue::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, AttrValue::Double(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, AttrValue::Str(format!("{value:?}")));
    }
}
