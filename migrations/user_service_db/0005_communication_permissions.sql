-- The communication service. Office hours: faculty and administrators publish slots
-- (`office_hours:publish`); administrators see and cancel everyone's (`office_hours:manage`).
-- Course forums: administrators moderate every forum (`forum:moderate`); faculty moderate the
-- forums of the courses they teach without a permission (the course service says who teaches).
INSERT INTO permissions (name) VALUES ('office_hours:publish'), ('office_hours:manage'), ('forum:moderate')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r
JOIN permissions p ON p.name IN ('office_hours:publish', 'office_hours:manage', 'forum:moderate')
WHERE r.name = 'admin'
ON CONFLICT DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name = 'office_hours:publish'
WHERE r.name = 'faculty'
ON CONFLICT DO NOTHING;
